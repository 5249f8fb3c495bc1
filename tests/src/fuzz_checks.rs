//! The properties the fuzz targets check, shared with the corpus replay test.
