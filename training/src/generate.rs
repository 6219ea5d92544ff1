//! Synthetic Odoo-shaped shipment history with the structure real dispatch data has: carriers
//! whose reliability and cost depend on the lane and the season, warehouses with weekday
//! congestion and a drifting backlog, peak seasons, regional weather disruptions, customer
//! tiers, priorities, hazardous and temperature-controlled goods, tight and loose promises, and
//! exception notes drawn from the labelled corpus in `data/notes/` by what made a shipment late.
//! Deterministic per seed: the same seed gives the same file, byte for byte.

use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::exceptions::CATEGORIES;

use crate::data::dates::format_timestamp;
use crate::data::load::is_parquet;
use crate::error::{Error, Result};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

struct Warehouse {
    name: &'static str,
    x: f64,
    y: f64,
    /// Extra handling days by weekday (Monday first): the post-weekend pile-up.
    weekday_load: [f64; 7],
}

struct Region {
    name: &'static str,
    x: f64,
    y: f64,
    /// Climate group: weather disruptions hit a whole group at once.
    climate: usize,
}

struct Carrier {
    name: &'static str,
    /// Base probability-like unreliability (extra delay scale in days).
    sloppiness: f64,
    /// Per climate group, how well the carrier's network copes (lower is better).
    climate_skill: [f64; 4],
    /// How much the carrier degrades in peak season.
    peak_sensitivity: f64,
    /// Kilometres covered per day of transit.
    km_per_day: f64,
    cost_per_kg_km: f64,
    /// Dispatchers' habitual preference, not its real quality.
    habit: f64,
    mode: &'static str,
}

const WAREHOUSES: [Warehouse; 4] = [
    Warehouse {
        name: "WH-EAST",
        x: 8.0,
        y: 5.0,
        weekday_load: [0.6, 0.3, 0.1, 0.1, 0.4, 0.0, 0.0],
    },
    Warehouse {
        name: "WH-WEST",
        x: 0.0,
        y: 4.0,
        weekday_load: [0.3, 0.2, 0.1, 0.2, 0.5, 0.0, 0.0],
    },
    Warehouse {
        name: "WH-NORTH",
        x: 5.0,
        y: 9.0,
        weekday_load: [0.8, 0.4, 0.2, 0.1, 0.2, 0.0, 0.0],
    },
    Warehouse {
        name: "WH-SOUTH",
        x: 4.0,
        y: 0.0,
        weekday_load: [0.2, 0.1, 0.1, 0.1, 0.3, 0.0, 0.0],
    },
];

const REGIONS: [Region; 20] = [
    Region {
        name: "FR-75 Paris",
        x: 4.0,
        y: 6.0,
        climate: 0,
    },
    Region {
        name: "FR-69 Lyon",
        x: 5.0,
        y: 3.0,
        climate: 1,
    },
    Region {
        name: "FR-13 Marseille",
        x: 5.5,
        y: 0.5,
        climate: 2,
    },
    Region {
        name: "FR-33 Bordeaux",
        x: 1.0,
        y: 2.0,
        climate: 2,
    },
    Region {
        name: "FR-59 Lille",
        x: 4.5,
        y: 8.5,
        climate: 0,
    },
    Region {
        name: "FR-67 Strasbourg",
        x: 8.5,
        y: 6.0,
        climate: 1,
    },
    Region {
        name: "FR-44 Nantes",
        x: 0.5,
        y: 4.5,
        climate: 3,
    },
    Region {
        name: "FR-31 Toulouse",
        x: 2.5,
        y: 1.0,
        climate: 2,
    },
    Region {
        name: "FR-74 Annecy",
        x: 7.0,
        y: 3.5,
        climate: 1,
    },
    Region {
        name: "FR-29 Brest",
        x: -2.0,
        y: 5.5,
        climate: 3,
    },
    Region {
        name: "BE-BRU Brussels",
        x: 5.5,
        y: 9.5,
        climate: 0,
    },
    Region {
        name: "DE-BW Stuttgart",
        x: 10.0,
        y: 5.5,
        climate: 1,
    },
    Region {
        name: "CH-GE Geneva",
        x: 6.8,
        y: 3.0,
        climate: 1,
    },
    Region {
        name: "ES-CT Barcelona",
        x: 4.0,
        y: -2.5,
        climate: 2,
    },
    Region {
        name: "IT-TO Turin",
        x: 8.5,
        y: 2.0,
        climate: 1,
    },
    Region {
        name: "FR-76 Rouen",
        x: 3.0,
        y: 7.5,
        climate: 3,
    },
    Region {
        name: "FR-35 Rennes",
        x: 0.5,
        y: 5.8,
        climate: 3,
    },
    Region {
        name: "FR-21 Dijon",
        x: 6.0,
        y: 4.8,
        climate: 0,
    },
    Region {
        name: "FR-06 Nice",
        x: 7.5,
        y: 0.8,
        climate: 2,
    },
    Region {
        name: "LU-LU Luxembourg",
        x: 7.5,
        y: 7.8,
        climate: 0,
    },
];

const CARRIERS: [Carrier; 6] = [
    Carrier {
        name: "SwiftHaul",
        sloppiness: 0.35,
        climate_skill: [0.8, 1.4, 0.9, 1.0],
        peak_sensitivity: 1.6,
        km_per_day: 520.0,
        cost_per_kg_km: 0.00055,
        habit: 3.0,
        mode: "road",
    },
    Carrier {
        name: "NordFreight",
        sloppiness: 0.25,
        climate_skill: [0.7, 0.8, 1.5, 1.2],
        peak_sensitivity: 0.8,
        km_per_day: 450.0,
        cost_per_kg_km: 0.00062,
        habit: 2.0,
        mode: "road",
    },
    Carrier {
        name: "BlueLine Express",
        sloppiness: 0.15,
        climate_skill: [0.9, 0.9, 0.9, 0.9],
        peak_sensitivity: 0.6,
        km_per_day: 750.0,
        cost_per_kg_km: 0.00110,
        habit: 1.0,
        mode: "express",
    },
    Carrier {
        name: "Castor Logistics",
        sloppiness: 0.45,
        climate_skill: [1.2, 1.0, 0.7, 0.8],
        peak_sensitivity: 1.2,
        km_per_day: 400.0,
        cost_per_kg_km: 0.00040,
        habit: 2.5,
        mode: "road",
    },
    Carrier {
        name: "Rapid Parcel",
        sloppiness: 0.30,
        climate_skill: [0.8, 1.1, 1.0, 1.3],
        peak_sensitivity: 2.2,
        km_per_day: 600.0,
        cost_per_kg_km: 0.00075,
        habit: 2.0,
        mode: "parcel",
    },
    Carrier {
        name: "Alpine Carriers",
        sloppiness: 0.28,
        climate_skill: [1.3, 0.5, 1.1, 1.2],
        peak_sensitivity: 1.0,
        km_per_day: 420.0,
        cost_per_kg_km: 0.00058,
        habit: 1.0,
        mode: "road",
    },
];

/// Checked generator parameters.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub rows: usize,
    pub seed: u64,
    pub start: NaiveDate,
    /// Share of the latest shipments left open (no delivery yet).
    pub open_fraction: f64,
}

impl GenerateConfig {
    pub fn new(rows: usize, seed: u64) -> Result<Self> {
        if rows == 0 {
            return Err(Error::param("rows", "must be at least 1"));
        }
        if rows > 50_000_000 {
            return Err(Error::param("rows", "at most 50,000,000"));
        }
        Ok(GenerateConfig {
            rows,
            seed,
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date"),
            open_fraction: 0.02,
        })
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller: enough for synthetic noise, and keeps the dependency list short.
    let u1: f64 = rng.gen_range(1e-12..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * rng.gen_range(1e-12..1.0f64).ln()
}

fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// Generated columns, in Odoo `stock.picking` naming.
#[derive(Default)]
struct Columns {
    shipment_id: Vec<String>,
    scheduled_date: Vec<String>,
    date_deadline: Vec<String>,
    shipped_at: Vec<Option<String>>,
    delivered_at: Vec<Option<String>>,
    carrier: Vec<&'static str>,
    warehouse: Vec<&'static str>,
    destination: Vec<&'static str>,
    customer_id: Vec<String>,
    customer_tier: Vec<&'static str>,
    priority: Vec<&'static str>,
    order_value: Vec<f64>,
    weight_kg: Vec<f64>,
    volume_m3: Vec<f64>,
    package_count: Vec<i64>,
    distance_km: Vec<f64>,
    shipping_cost: Vec<f64>,
    hazardous: Vec<bool>,
    temperature_controlled: Vec<bool>,
    transport_mode: Vec<&'static str>,
    service_level: Vec<&'static str>,
    notes: Vec<Option<String>>,
}

/// Generates the history as a polars frame.
pub fn generate(config: &GenerateConfig) -> Result<DataFrame> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // Notes draw from their own stream, so adding them left every other column as it was.
    let mut note_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6e6f_7465);
    let corpus = corpus_notes()?;
    // About 400 shipments a day, so small samples still cover a season or more.
    let days = ((config.rows as f64 / 400.0).ceil() as i64).max(120);
    let start = config
        .start
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp();

    // Warehouse backlog: a slowly drifting AR(1) process per warehouse and day.
    let backlog: Vec<Vec<f64>> = WAREHOUSES
        .iter()
        .map(|_| {
            let mut b = 0.0;
            (0..days + 30)
                .map(|_| {
                    b = 0.85 * b + 0.35 * normal(&mut rng);
                    b.max(0.0)
                })
                .collect()
        })
        .collect();
    // Weather: episodes per climate group, more frequent in winter.
    let mut weather = vec![vec![0.0f64; (days + 40) as usize]; 4];
    for (g, series) in weather.iter_mut().enumerate() {
        let mut d = 0i64;
        while d < days + 30 {
            d += exponential(&mut rng, 25.0 + 5.0 * g as f64).ceil() as i64;
            let month = day_month(start, d);
            let winter = matches!(month, 11 | 12 | 1 | 2);
            if !winter && rng.gen::<f64>() < 0.45 {
                continue;
            }
            let length = rng.gen_range(2..7);
            let severity = 0.8 + exponential(&mut rng, 1.2);
            for k in d..(d + length).min(days + 40) {
                series[k as usize] += severity;
            }
        }
    }
    // Customers: tiers and habits.
    let tiers = ["premium", "standard", "basic"];
    let customers: Vec<(String, usize, f64)> = (0..400)
        .map(|i| {
            let tier = pick_weighted(&mut rng, &[0.15, 0.6, 0.25]);
            (
                format!("CUST-{:04}", i + 1),
                tier,
                0.5 + rng.gen::<f64>() * 2.0,
            )
        })
        .collect();
    let customer_weights: Vec<f64> = customers.iter().map(|c| c.2).collect();
    let region_weights: Vec<f64> = (0..REGIONS.len()).map(|i| 1.0 + (i % 5) as f64).collect();

    let mut c = Columns::default();
    let mut counters = [0usize; 4];
    for i in 0..config.rows {
        let day = (i as i64 * days) / config.rows as i64;
        let weekday_base = DateTime::from_timestamp(start + day * DAY, 0)
            .map(|d| d.weekday().num_days_from_monday() as usize)
            .unwrap_or(0);
        // Weekend releases are rare: push most of them to Monday.
        let (day, weekday) = if weekday_base >= 5 && rng.gen::<f64>() < 0.8 {
            (day + (7 - weekday_base as i64), 0)
        } else {
            (day, weekday_base)
        };
        let decided = start + day * DAY + rng.gen_range(6 * HOUR..18 * HOUR);
        let w = pick_weighted(&mut rng, &[0.35, 0.25, 0.2, 0.2]);
        let r = pick_weighted(&mut rng, &region_weights);
        let (wh, region) = (&WAREHOUSES[w], &REGIONS[r]);
        let distance = (((wh.x - region.x).powi(2) + (wh.y - region.y).powi(2)).sqrt() * 95.0
            + 15.0)
            * (1.0 + 0.1 * rng.gen::<f64>());
        let cust = pick_weighted(&mut rng, &customer_weights);
        let tier = customers[cust].1;
        let urgent = rng.gen::<f64>() < if tier == 0 { 0.3 } else { 0.1 };
        let hazardous = rng.gen::<f64>() < 0.05;
        let cold = rng.gen::<f64>() < 0.08;
        let weight = (normal(&mut rng) * 1.1 + 4.5).exp().clamp(1.0, 24_000.0);
        let volume = weight / (150.0 + 100.0 * rng.gen::<f64>());
        let packages = ((weight / 25.0).ceil() as i64).clamp(1, 60);
        let value = weight * (8.0 + 40.0 * rng.gen::<f64>()) * if cold { 2.5 } else { 1.0 };
        let service = if urgent || (tier == 0 && rng.gen::<f64>() < 0.4) {
            0
        } else {
            pick_weighted(&mut rng, &[0.1, 0.65, 0.25])
        };
        // Dispatchers pick by habit, a little by speed for express: not by measured quality.
        let carrier_weights: Vec<f64> = CARRIERS
            .iter()
            .map(|k| {
                let express_fit = if service == 0 && k.mode != "road" {
                    2.0
                } else {
                    1.0
                };
                let lane_habit = 1.0 + ((w * 7 + r * 3 + k.name.len()) % 4) as f64 * 0.4;
                k.habit
                    * express_fit
                    * lane_habit
                    * if hazardous && k.mode == "parcel" {
                        0.1
                    } else {
                        1.0
                    }
            })
            .collect();
        let k = pick_weighted(&mut rng, &carrier_weights);
        let carrier = &CARRIERS[k];

        let transit_days = distance / carrier.km_per_day;
        let promise_days = match service {
            0 => transit_days.ceil().max(1.0),
            1 => transit_days.ceil() + 1.0 + rng.gen_range(0..3) as f64,
            _ => transit_days.ceil() + 3.0 + rng.gen_range(0..4) as f64,
        };
        // Some promises are made tight by sales: a day shaved off.
        let tight = rng.gen::<f64>() < 0.15;
        let promise_days = if tight {
            (promise_days - 1.0).max(1.0)
        } else {
            promise_days
        };
        let deadline_day = (decided / DAY) + promise_days as i64;
        let deadline = deadline_day * DAY + 18 * HOUR;

        let month = day_month(start, day);
        let peak = match month {
            11 => 0.7,
            12 => 1.0,
            7 | 8 => 0.35,
            _ => 0.0,
        };
        let wd = (day + 30).min(days + 29) as usize;
        let handling_days = wh.weekday_load[weekday] * 0.8
            + backlog[w][wd.min(backlog[w].len() - 1)] * 0.5
            + if hazardous { 0.5 } else { 0.0 }
            + if cold { 0.15 } else { 0.0 }
            + peak * 0.4
            - if urgent { 0.2 } else { 0.0 };
        let shipped =
            decided + ((handling_days.max(0.0) + exponential(&mut rng, 0.15)) * DAY as f64) as i64;
        let ship_day = (shipped - start).div_euclid(DAY).clamp(0, days + 39) as usize;
        let storm = weather[region.climate][ship_day]
            + 0.5 * weather[region.climate][(ship_day + 1).min(days as usize + 39)];
        let disruption = carrier.sloppiness
            * carrier.climate_skill[region.climate]
            * (1.0 + carrier.peak_sensitivity * peak)
            + 0.45 * storm * carrier.climate_skill[region.climate]
            + if cold && carrier.mode == "parcel" {
                0.4
            } else {
                0.0
            };
        let transit = transit_days * (0.9 + 0.2 * rng.gen::<f64>())
            + exponential(&mut rng, disruption.max(0.05));
        let delivered = shipped + (transit * DAY as f64) as i64 + rng.gen_range(2 * HOUR..8 * HOUR);

        let open = i as f64 >= config.rows as f64 * (1.0 - config.open_fraction);
        let skill = carrier.climate_skill[region.climate];
        let causes = NoteCauses {
            late: delivered > deadline,
            weather: 0.45 * storm * skill,
            warehouse: (handling_days - 1.0).max(0.0),
            carrier: carrier.sloppiness * skill,
            hazardous,
        };
        c.notes.push(
            (!open)
                .then(|| causes.note(&mut note_rng, &corpus))
                .flatten(),
        );
        counters[w] += 1;
        c.shipment_id
            .push(format!("{}/OUT/{:06}", wh.name, counters[w]));
        c.scheduled_date.push(format_timestamp(decided));
        c.date_deadline.push(format_timestamp(deadline));
        c.shipped_at
            .push((!open).then(|| format_timestamp(shipped)));
        c.delivered_at
            .push((!open).then(|| format_timestamp(delivered)));
        c.carrier.push(carrier.name);
        c.warehouse.push(wh.name);
        c.destination.push(region.name);
        c.customer_id.push(customers[cust].0.clone());
        c.customer_tier.push(tiers[tier]);
        c.priority.push(if urgent { "1" } else { "0" });
        c.order_value.push((value * 100.0).round() / 100.0);
        c.weight_kg.push((weight * 10.0).round() / 10.0);
        c.volume_m3.push((volume * 1000.0).round() / 1000.0);
        c.package_count.push(packages);
        c.distance_km.push(distance.round());
        let cost = (carrier.cost_per_kg_km * weight * distance + 12.0)
            * (1.0 + 0.08 * normal(&mut rng)).max(0.5)
            * if service == 0 { 1.4 } else { 1.0 };
        c.shipping_cost.push((cost * 100.0).round() / 100.0);
        c.hazardous.push(hazardous);
        c.temperature_controlled.push(cold);
        c.transport_mode.push(carrier.mode);
        c.service_level
            .push(["express", "standard", "economy"][service]);
    }
    to_frame(c)
}

/// What made a shipment late (or not), for the note a dispatcher or carrier would write.
struct NoteCauses {
    late: bool,
    weather: f64,
    warehouse: f64,
    carrier: f64,
    hazardous: bool,
}

impl NoteCauses {
    /// Most late shipments get a note about the cause that weighed most (drawn by weight, as
    /// notes are noisy); a few on-time ones get one too.
    fn note(&self, rng: &mut ChaCha8Rng, corpus: &[Vec<String>]) -> Option<String> {
        let (categories, weights): (Vec<&str>, Vec<f64>) = if self.late {
            if rng.gen::<f64>() >= 0.7 {
                return None;
            }
            [
                ("weather", self.weather),
                ("warehouse_delay", self.warehouse),
                ("carrier_delay", self.carrier),
                ("vehicle_issue", 0.3 * self.carrier),
                ("customs_documents", if self.hazardous { 0.3 } else { 0.03 }),
                ("recipient_unavailable", 0.1),
                ("address_issue", 0.08),
                ("stock_shortage", 0.05),
                ("damaged", 0.05),
                ("lost", 0.03),
                ("payment_hold", 0.03),
                ("reschedule_request", 0.03),
            ]
            .into_iter()
            .unzip()
        } else {
            if rng.gen::<f64>() >= 0.05 {
                return None;
            }
            [
                ("other", 0.4),
                ("reschedule_request", 0.2),
                ("recipient_unavailable", 0.15),
                ("damaged", 0.1),
                ("refused", 0.1),
                ("address_issue", 0.05),
            ]
            .into_iter()
            .unzip()
        };
        let category = categories[pick_weighted(rng, &weights)];
        let k = CATEGORIES.iter().position(|c| *c == category)?;
        let notes = &corpus[k];
        (!notes.is_empty()).then(|| notes[rng.gen_range(0..notes.len())].clone())
    }
}

/// The corpus' training notes by category ([`CATEGORIES`] order): generated notes come from
/// them, so history and classifier share one vocabulary.
fn corpus_notes() -> Result<Vec<Vec<String>>> {
    let text = include_str!("../../data/notes/train.csv");
    let err = |source| Error::Polars {
        context: "reading the built-in notes corpus".into(),
        source,
    };
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(std::io::Cursor::new(text.as_bytes()))
        .finish()
        .map_err(err)?;
    let column = |name: &str| -> Result<Vec<String>> {
        Ok(df
            .column(name)
            .and_then(|c| c.str().cloned())
            .map_err(err)?
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let mut out = vec![Vec::new(); CATEGORIES.len()];
    for (text, category) in column("text")?.into_iter().zip(column("category")?) {
        if let Some(k) = CATEGORIES.iter().position(|c| *c == category) {
            out[k].push(text);
        }
    }
    Ok(out)
}

fn day_month(start: i64, day: i64) -> u32 {
    DateTime::from_timestamp(start + day * DAY, 0)
        .map(|d| d.month())
        .unwrap_or(1)
}

fn to_frame(c: Columns) -> Result<DataFrame> {
    let n = c.shipment_id.len();
    DataFrame::new(
        n,
        vec![
            Column::new("shipment_id".into(), c.shipment_id),
            Column::new("scheduled_date".into(), c.scheduled_date),
            Column::new("date_deadline".into(), c.date_deadline),
            Column::new("shipped_at".into(), c.shipped_at),
            Column::new("delivered_at".into(), c.delivered_at),
            Column::new("carrier".into(), c.carrier),
            Column::new("warehouse".into(), c.warehouse),
            Column::new("destination".into(), c.destination),
            Column::new("customer_id".into(), c.customer_id),
            Column::new("customer_tier".into(), c.customer_tier),
            Column::new("priority".into(), c.priority),
            Column::new("order_value".into(), c.order_value),
            Column::new("weight_kg".into(), c.weight_kg),
            Column::new("volume_m3".into(), c.volume_m3),
            Column::new("package_count".into(), c.package_count),
            Column::new("distance_km".into(), c.distance_km),
            Column::new("shipping_cost".into(), c.shipping_cost),
            Column::new("hazardous".into(), c.hazardous),
            Column::new("temperature_controlled".into(), c.temperature_controlled),
            Column::new("transport_mode".into(), c.transport_mode),
            Column::new("service_level".into(), c.service_level),
            Column::new("notes".into(), c.notes),
        ],
    )
    .map_err(|source| Error::Polars {
        context: "building generated history".into(),
        source,
    })
}

/// Writes a frame as CSV or Parquet, by the file's extension.
pub fn write_frame(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let err = |source| Error::Polars {
        context: format!("writing {}", path.display()),
        source,
    };
    if is_parquet(path) {
        ParquetWriter::new(file).finish(df).map_err(err)?;
    } else {
        CsvWriter::new(std::io::BufWriter::new(file))
            .finish(df)
            .map_err(err)?;
    }
    Ok(())
}
