//! Who keeps which connection when two ranks dial each other at once.
//!
//! Connections are made on first use, so ranks `a` and `b` may dial each other at the same
//! moment. Each dial opens with a Hello; the acceptor answers HelloAck (this connection carries
//! the pair's traffic) or HelloReject (the other one will), and the dialler sends nothing but its
//! Hello before the answer. Both sides apply the same rule, so they always agree: when both dial,
//! the connection dialled by the lower rank is kept.

/// What the accepting side knows about its own link to the dialler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkView {
    /// No connection to the dialler, none being dialled.
    None,
    /// This side is dialling the dialler too, not yet answered.
    Dialling,
    /// A connection to the dialler is already up.
    Up,
}

/// Should `me` accept a Hello from `dialler`?
pub(crate) fn accept(me: usize, dialler: usize, link: LinkView) -> bool {
    match link {
        LinkView::None => true,
        LinkView::Dialling => dialler < me,
        LinkView::Up => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_connection_survives_a_simultaneous_dial() {
        for (a, b) in [(0, 1), (1, 0), (3, 7), (9, 2)] {
            let a_accepts_b = accept(a, b, LinkView::Dialling);
            let b_accepts_a = accept(b, a, LinkView::Dialling);
            assert!(a_accepts_b ^ b_accepts_a, "{a} {b}");
            // The kept connection is the one the lower rank dialled.
            assert_eq!(b_accepts_a, a < b);
        }
        assert!(accept(4, 5, LinkView::None));
        assert!(!accept(4, 1, LinkView::Up));
    }
}
