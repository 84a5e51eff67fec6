fn main() {
    eprintln!("split-proxy: not built yet");
    std::process::exit(1);
}
