//! PostgreSQL's replication messages (what a database hands an event-source
//! mapping): any bytes are refused or parsed, and a parsed change becomes a
//! DynamoDB record or nothing, never a panic.

use std::collections::HashMap;

use mayfly_host::mappings::pgoutput::{parse, record, Message};

#[test]
fn replication_messages_parse_or_are_refused() {
    bolero::check!().for_each(|input: &[u8]| {
        let mut relations = HashMap::new();
        // The same bytes as a relation, then as a change of it.
        for start in [0, input.len() / 2] {
            match parse(&input[start..]) {
                Ok(Message::Relation(relation)) => {
                    relations.insert(relation.id, relation);
                }
                Ok(Message::Change(change)) => {
                    if let Some(r) = record(&change, &relations, &[], 1, 1, "s") {
                        assert!(r["dynamodb"]["Keys"].is_object());
                    }
                }
                _ => {}
            }
        }
    });
}
