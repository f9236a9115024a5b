"""Feature caching: encoders and the HDF5 feature store."""
