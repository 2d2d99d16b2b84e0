//! Values of any serde type through real jobs: a dozen shapes through every value operation
//! with wildcards, against the same data as Pod; 64 MiB values; corrupted payloads; a rank that
//! cannot encode; value sends whose requests were dropped before they completed.

mod util;

use util::rank_case;

#[test]
fn a_dozen_shapes_through_every_value_operation_on_2_3_4_7_ranks() {
    for n in [2, 3, 4, 7] {
        rank_case("t_value", n, "shapes", &[], &[]);
    }
}

#[test]
fn values_of_64_mib() {
    rank_case("t_value", 2, "big", &[], &[]);
    rank_case("t_value", 3, "big", &[], &[]);
}

#[test]
fn corrupted_value_payloads_are_decode_errors() {
    rank_case("t_value", 1, "corrupt", &[], &[]);
    rank_case("t_value", 2, "corrupt", &[], &[]);
}

#[test]
fn a_rank_that_cannot_encode_leaves_nobody_waiting() {
    for n in [1, 2, 4] {
        rank_case("t_value", n, "unencodable", &[], &[]);
    }
}

#[test]
fn dropped_value_sends_still_arrive() {
    rank_case("t_value", 2, "dropped", &[], &[]);
    // Over sockets too (the receiver reads from the connection, not the sender's memory).
    rank_case("t_value", 2, "dropped", &[], &[("MPR_LOCAL", "unix")]);
}
