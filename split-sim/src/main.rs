fn main() {
    eprintln!("split-sim: not built yet");
    std::process::exit(1);
}
