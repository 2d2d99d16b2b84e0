//! Joining the job: [`init`] builds the [`World`], [`World::finalize`] leaves it.
//!
//! Start-up is data first: the [`Bootstrap`] is read from the environment `mprun` set, then the
//! listener is opened and registered with the launcher's rendezvous service. No connection to any
//! other rank is made here; those are made on first use.

use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crate::bootstrap::{Bootstrap, Client};
use crate::comm::Comm;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::transport::{net::Net, Transport};
use crate::tuning::Tuning;

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Seconds since an arbitrary point in this process's past; monotonic (MPI_Wtime).
///
/// ```
/// let t0 = mpr::wtime();
/// let x: f64 = (0..1000).map(|i| i as f64).sum();
/// let dt = mpr::wtime() - t0;
/// assert!(dt >= 0.0 && x > 0.0);
/// ```
pub fn wtime() -> f64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The job as seen by this process: the world communicator plus the right to finalize.
///
/// Dereferences to [`Comm`] (the world communicator). Dropping it finalizes.
pub struct World {
    comm: Comm,
    finalized: bool,
}

/// Joins the job `mprun` started (or makes a world of one rank when run without `mprun`).
///
/// ```no_run
/// let world = mpr::init()?;
/// println!("rank {} of {}", world.rank(), world.size());
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn init() -> Result<World> {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Err(Error::InvalidArgument {
            what: "init",
            detail: "mpr::init was already called in this process".into(),
        });
    }
    let _ = wtime();
    let tuning = Tuning::from_env()?;
    let engine = match Bootstrap::from_env().map_err(|e| Error::Bootstrap {
        what: e.to_string(),
    })? {
        None => Engine::new(0, 1, Transport::new(0, None), tuning, (1, 1), false),
        Some(b) => {
            if !crate::sys::die_with_parent(b.launcher_pid) {
                return Err(Error::Bootstrap {
                    what: "the launcher that started this rank has already exited".into(),
                });
            }
            if tuning.pull && tuning.local_unix {
                crate::sys::allow_peers_to_copy();
            }
            let mut net = Net::new(&b, tuning.clone())?;
            let (addr, node) = net.registration();
            net.set_directory(Client::connect(&b, addr, node)?);
            let mut engine = Engine::new(
                b.rank,
                b.size,
                Transport::new(b.rank, Some(net)),
                tuning,
                (b.local_size, b.machine_ranks),
                b.crowded,
            );
            engine.host = b.host.clone().unwrap_or_default();
            if let Some(o) = engine.observer.clone() {
                engine.align_clock(&o);
            }
            engine
        }
    };
    Ok(World {
        comm: Comm::world(Rc::new(RefCell::new(engine))),
        finalized: false,
    })
}

impl World {
    /// Leaves the job: waits until every message this rank sent has been delivered (or its peer
    /// is gone) and every connected peer has finalized too, then closes the connections.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// world.send(&[1u8], world.rank(), 0)?;
    /// # let mut b = [0u8]; world.recv(&mut b, world.rank(), 0)?;
    /// // Dropping the world does the same, printing an error if there is one; finalize returns it.
    /// world.finalize()?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn finalize(mut self) -> Result<()> {
        self.finalize_inner()
    }

    fn finalize_inner(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.finalized, true) {
            return Ok(());
        }
        match self.comm.engine.try_borrow_mut() {
            Ok(mut e) => e.finalize(),
            Err(_) => Ok(()),
        }
    }
}

impl Deref for World {
    type Target = Comm;
    fn deref(&self) -> &Comm {
        &self.comm
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Err(e) = self.finalize_inner() {
            eprintln!("mpr: rank {}: finalize: {e}", self.comm.rank());
        }
    }
}
