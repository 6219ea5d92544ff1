use std::time::Instant;
use dispatch_risk_training::data::{BadRowLimit, ImportProfile};
use dispatch_risk_training::model::{DelayModel, FactorMethod};
use dispatch_risk_training::carrier::RankingPolicy;
fn main() {
    let model = DelayModel::load(std::path::Path::new("models/default")).unwrap();
    let (table, _) = dispatch_risk_training::data::load::load_history(std::path::Path::new("data/samples/history_sample.csv"), &ImportProfile::default(), BadRowLimit::default()).unwrap();
    let rows: Vec<usize> = (table.len()-1000..table.len()).collect();
    let x = model.features(&table, &rows);
    for (name, k) in [("predict", 0usize), ("path3", 3)] {
        let t = Instant::now();
        for i in 0..1000 { let xi = x.select_rows(&[i]); let _ = model.score(&xi, k, FactorMethod::Path).unwrap(); }
        println!("{name}: {:.1} us/row single", t.elapsed().as_secs_f64()*1e3);
    }
    let t = Instant::now();
    for i in 0..1000 { let _ = model.features(&table, &rows[i..i+1]); }
    println!("features: {:.1} us/row single", t.elapsed().as_secs_f64()*1e3);
    let t = Instant::now();
    for i in 0..1000 { let _ = model.recommend(&table, &rows[i..i+1], None, &RankingPolicy::default()).unwrap(); }
    println!("recommend: {:.1} us/row single", t.elapsed().as_secs_f64()*1e3);
    let t = Instant::now();
    let _ = model.score(&x, 3, FactorMethod::Path).unwrap();
    println!("path3 block of 1000: {:.1} us/row", t.elapsed().as_secs_f64()*1e3);
}
