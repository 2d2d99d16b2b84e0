//! Layouts through the real mprun: vector, 2-D and 3-D subarray and indexed layouts, small and
//! above the rendezvous limit, against contiguous buffers and each other, blocking, nonblocking
//! and through sendrecv, every element checked on 1 to 4 ranks; persistent requests and halo
//! exchanges with layouts; bad layouts refused.

mod util;

use util::rank_case;

#[test]
fn layouts_in_every_combination_with_contiguous_buffers() {
    for n in [1, 2, 3, 4] {
        rank_case("t_layout", n, "combos", &[], &[]);
    }
}

#[test]
fn layouts_over_unix_sockets_and_tcp_too() {
    for local in ["unix", "tcp"] {
        rank_case("t_layout", 2, "combos", &[], &[("MPR_LOCAL", local)]);
    }
}

#[test]
fn persistent_layouts_and_halo_exchanges() {
    for n in [1, 2, 3, 4] {
        rank_case("t_layout", n, "persistent", &[], &[]);
    }
}

#[test]
fn bad_layouts_are_errors() {
    for n in [1, 2] {
        rank_case("t_layout", n, "bad", &[], &[]);
    }
}
