//! SIGINT / SIGTERM / SIGHUP to mprun become events for the supervisor, which forwards them to the
//! ranks (the first) or kills them at once (a second).

use std::sync::mpsc::Sender;

use crate::error::LaunchError;
use crate::report::Event;

pub fn install(events: Sender<Event>) -> Result<(), LaunchError> {
    ctrlc::set_handler(move || {
        let _ = events.send(Event::Signal);
    })
    .map_err(|e| LaunchError::System(format!("cannot install the signal handler: {e}")))
}
