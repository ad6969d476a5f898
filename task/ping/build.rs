fn main() {
    // defmt logging (userlib feature `defmt`): `.defmt` string table.
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
}
