fn main() {
    println!("courbe: not yet");
}
