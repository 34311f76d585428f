//! Shared pieces of the fuzz targets.

use stratos_schema::Ipld;
use stratos_schema::lexicon::{ValidationContext, validate_record};

/// Runs the record validator over a value as every record collection Stratos writes.
pub fn validate_as_records(value: &Ipld) {
    let context = ValidationContext::new("did:web:stratos.example.com", ["general", "writers"]);
    for collection in ["zone.stratos.feed.post", "zone.stratos.actor.enrollment"] {
        let collection = collection.parse().expect("valid NSID");
        let _ = validate_record(&context, &collection, value);
    }
}
