//! Every rank says hello: `mprun -n 4 target/release/hello`.

fn main() -> mpr::Result<()> {
    let world = mpr::init()?;
    let host = std::env::var("MPR_HOST").unwrap_or_else(|_| "localhost".into());
    println!(
        "hello from rank {} of {} on {host}",
        world.rank(),
        world.size()
    );
    Ok(())
}
