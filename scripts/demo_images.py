"""demo_images: generate the image-caption demo dataset in the prepared layout."""

from _bootstrap import init

init(snakemake)

from xmhash.data.demo_images import ImageDemoSpec, write_image_demo  # noqa: E402
from xmhash.log import wrote  # noqa: E402

write_image_demo(snakemake.output[0], ImageDemoSpec(**snakemake.params.spec))
wrote(snakemake.output)
