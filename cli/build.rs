//! Links the embedded interpreter with an rpath to the `libpython` found at build time,
//! so the binary does not silently load a different one at run time.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
