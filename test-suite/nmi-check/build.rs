fn main() {
    build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
}
