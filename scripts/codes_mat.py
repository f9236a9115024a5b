"""codes_mat: one run's codes.h5 as codes.mat (for MATLAB users)."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.codes import export_mat, load_codes  # noqa: E402

export_mat(snakemake.output[0], load_codes(snakemake.input[0]))  # noqa: F821
