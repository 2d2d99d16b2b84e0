//! Nonblocking collectives against their blocking twins on random data (2, 3, 4, 7 ranks),
//! overlapped with computation, point-to-point traffic and each other on three communicators;
//! v-collectives with displacements; in-place forms; MinLoc/MaxLoc and the logical operators.

mod util;

use util::rank_case;

#[test]
fn every_nonblocking_collective_matches_its_blocking_twin() {
    for n in [1, 2, 3, 4, 7] {
        rank_case("t_icoll", n, "twins", &[], &[]);
    }
}

#[test]
fn nonblocking_collectives_by_message_match_too() {
    // The blocking twins by message as well (not through the node segment).
    rank_case("t_icoll", 4, "twins", &[], &[("MPR_NODE_COLL", "0")]);
}

#[test]
fn collectives_in_flight_together_on_three_communicators() {
    for n in [2, 3, 4, 7] {
        rank_case("t_icoll", n, "overlap", &[], &[]);
    }
}

#[test]
fn v_collectives_with_displacements() {
    for n in [1, 2, 3, 4, 7] {
        rank_case("t_icoll", n, "displs", &[], &[]);
    }
}

#[test]
fn in_place_forms_match_two_buffer_forms() {
    for n in [1, 2, 3, 4, 7] {
        rank_case("t_icoll", n, "in_place", &[], &[]);
    }
}

#[test]
fn minloc_maxloc_and_logical_operators() {
    for n in [1, 2, 3, 4, 7] {
        rank_case("t_icoll", n, "ops", &[], &[]);
    }
}
