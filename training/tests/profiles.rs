//! The shipped import profiles read exports shaped like the ones they were written for. The
//! rows here are made up in each export's format; the real files stay outside the repository.

use std::path::{Path, PathBuf};

use dispatch_risk_training::data::dates::DateParser;
use dispatch_risk_training::data::{load_history, BadRowLimit, ImportProfile};

fn profile(name: &str) -> ImportProfile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/profiles")
        .join(name);
    ImportProfile::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn day(s: &str) -> i64 {
    DateParser::default().parse(s).unwrap()
}

#[test]
fn scms_profile_maps_columns_and_derives_the_decision_time() {
    let dir = tempfile::tempdir().unwrap();
    let header = "ID,Project Code,PQ #,PO / SO #,ASN/DN #,Country,Managed By,Fulfill Via,Vendor INCO Term,Shipment Mode,PQ First Sent to Client Date,PO Sent to Vendor Date,Scheduled Delivery Date,Delivered to Client Date,Delivery Recorded Date,Product Group,Sub Classification,Vendor,Item Description,Molecule/Test Type,Brand,Dosage,Dosage Form,Unit of Measure (Per Pack),Line Item Quantity,Line Item Value,Pack Price,Unit Price,Manufacturing Site,First Line Designation,Weight (Kilograms),Freight Cost (USD),Line Item Insurance (USD)";
    let rows = [
        "7,100-XX-T01,Pre-PQ Process,SCMS-1,ASN-1,Kenya,PMO - US,Direct Drop,EXW,Air,Pre-PQ Process,3/1/10,2-Jun-10,9-Jun-10,9-Jun-10,ARV,Adult,Vendor A,Drug 1,Drug,Generic,10mg,Tablet,60,100,1000,10,0.16,Site A,Yes,55,See ASN-1 (ID#:7),1.5",
        "8,100-XX-T02,Q-1,SO-2,DN-2,Kenya,PMO - US,From RDC,N/A - From RDC,,5/20/10,N/A - From RDC,1-Jul-10,30-Jun-10,30-Jun-10,HRDT,HIV test,SCMS from RDC,Test 1,Test,Brand,,Test kit,100,20,400,20,0.2,Site B,No,Weight Captured Separately,Freight Included in Commodity Cost,",
        "9,100-XX-T03,Pre-PQ Process,SO-3,DN-3,Haiti,PMO - US,From RDC,N/A - From RDC,Truck,Date Not Captured,N/A - From RDC,5-Aug-10,5-Aug-10,6-Aug-10,ARV,Adult,SCMS from RDC,Drug 2,Drug,Generic,20mg,Tablet,30,50,700,14,0.47,Site C,Yes,120,870.5,2",
    ];
    let path = write(
        &dir,
        "scms.csv",
        &format!("{header}\n{}\n", rows.join("\n")),
    );
    let (t, report) = load_history(&path, &profile("scms.toml"), BadRowLimit::Count(0)).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(
        t.shipment_id.iter().flatten().collect::<Vec<_>>(),
        vec!["7", "8", "9"]
    );
    assert_eq!(
        t.carrier.iter().flatten().collect::<Vec<_>>(),
        vec!["Air", "Unknown", "Truck"],
        "an empty mode gets the profile's default"
    );
    assert_eq!(&t.warehouse[1], "SCMS from RDC");
    // Decision time: the PO date, else the PQ date, else 90 days before the deadline.
    assert_eq!(
        t.scheduled_date,
        vec![
            day("2010-03-01"),
            day("2010-05-20"),
            day("2010-08-05") - 90 * 86_400
        ]
    );
    assert_eq!(t.is_late(0), Some(true));
    assert_eq!(t.is_late(1), Some(false));
    let weight = &t.numeric("weight_kg").unwrap().values;
    assert!(weight[0] == 55.0 && weight[1].is_nan());
    assert!(
        t.numeric("shipping_cost").unwrap().values[0].is_nan(),
        "a cross-reference is not a cost"
    );
    for outcome in ["delivery_recorded_date", "asn_dn"] {
        assert!(
            t.categorical(outcome).is_none() && t.numeric(outcome).is_none(),
            "{outcome} must not be a feature"
        );
    }
    assert!(
        t.categorical("fulfill_via").is_some(),
        "unmapped columns become extra features"
    );
}

#[test]
fn truck_profile_reads_timestamps_and_drops_in_trip_observations() {
    let dir = tempfile::tempdir().unwrap();
    let header = "GpsProvider,BookingID,Market/Regular ,BookingID_Date,vehicle_no,Origin_Location,Destination_Location,Org_lat_lon,Des_lat_lon,Data_Ping_time,Planned_ETA,Current_Location,DestinationLocation,actual_eta,Curr_lat,Curr_lon,ontime,delay,OriginLocation_Code,DestinationLocation_Code,trip_start_date,trip_end_date,TRANSPORTATION_DISTANCE_IN_KM,vehicleType,Minimum_kms_to_be_covered_in_a_day,customerID,customerNameCode,supplierID,supplierNameCode,Material Shipped";
    let rows = [
        "GPS A,B1,Regular,2020-08-17 14:59:01.000,V1,\"Hub A,City A\",\"Plant B,City B\",\"1.0,2.0\",\"3.0,4.0\",2020-08-24 00:05:09,2020-08-21 18:59:01,Somewhere,\"Plant B,City B\",2020-08-28 14:38:04.447000,1.1,2.2,,R,OA,DB,2020-08-17 14:59:01,,320.0,32 FT,,C1,Customer 1,S1,Transporter 1,Brackets",
        "GPS B,B2,Market,2020-08-27 16:22:22.827,V2,\"Hub A,City A\",\"Plant C,City C\",\"1.0,2.0\",\"5.0,6.0\",2020-08-28 12:40:28,2020-08-31 20:22:22.827000,Elsewhere,\"Plant C,City C\",2020-08-28 12:46:17.007000,5.0,6.0,G,,OA,DC,2020-08-27 16:21:52,,103.0,40 FT,,C2,Customer 2,S2,Unknown,Plates",
    ];
    let path = write(
        &dir,
        "trucks.csv",
        &format!("{header}\n{}\n", rows.join("\n")),
    );
    let (t, report) =
        load_history(&path, &profile("truck_trips.toml"), BadRowLimit::Count(0)).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(t.is_late(0), Some(true));
    assert_eq!(t.is_late(1), Some(false));
    assert_eq!(&t.warehouse[0], "Hub A,City A");
    assert_eq!(t.numeric("distance_km").unwrap().values, vec![320.0, 103.0]);
    assert!(t.categorical("market_or_regular").is_some());
    for leak in [
        "current_location",
        "curr_lat",
        "data_ping_time",
        "ontime",
        "delay",
        "trip_start_date",
    ] {
        assert!(
            t.categorical(leak).is_none() && t.numeric(leak).is_none(),
            "{leak} is observed after dispatch"
        );
    }
}

#[test]
fn every_shipped_profile_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/profiles");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            ImportProfile::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "expected the Odoo, SCMS and truck profiles, found {n}"
    );
}
