//! Carrier rate tables: what each carrier charges on a lane, by weight band, and how long it
//! takes. Read from CSV or Parquet through a small profile that maps the file's column names
//! (the shape of `../shared/datasets/freight_rates.csv` by default). A quote is
//! `max(minimum charge, rate per kg x weight)` in the band holding the weight, the cheapest
//! service when several match.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::load::read_frame;
use crate::error::{Error, Result};

/// Which source column holds each rate field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateProfile {
    pub carrier: String,
    pub origin: String,
    pub destination: String,
    pub min_weight_kg: String,
    pub max_weight_kg: String,
    pub minimum_charge: String,
    pub rate_per_kg: String,
    pub service: Option<String>,
    pub mode: Option<String>,
    pub transit_days: Option<String>,
}

impl Default for RateProfile {
    /// The column names of the freight-rates dataset.
    fn default() -> Self {
        RateProfile {
            carrier: "Carrier".into(),
            origin: "orig_port_cd".into(),
            destination: "dest_port_cd".into(),
            min_weight_kg: "minm_wgh_qty".into(),
            max_weight_kg: "max_wgh_qty".into(),
            minimum_charge: "minimum cost".into(),
            rate_per_kg: "rate".into(),
            service: Some("svc_cd".into()),
            mode: Some("mode_dsc".into()),
            transit_days: Some("tpt_day_cnt".into()),
        }
    }
}

impl RateProfile {
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Input(format!("rate profile: {e}")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub min_kg: f64,
    pub max_kg: f64,
    pub minimum_charge: f64,
    pub per_kg: f64,
    pub service: Option<String>,
    pub mode: Option<String>,
    pub transit_days: Option<f64>,
}

/// A quote for one shipment.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub cost: f64,
    pub transit_days: Option<f64>,
    pub service: Option<String>,
}

/// Rates by "origin\tdestination", then carrier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateTable {
    lanes: BTreeMap<String, BTreeMap<String, Vec<Rate>>>,
}

fn lane(origin: &str, destination: &str) -> String {
    format!("{origin}\t{destination}")
}

impl RateTable {
    /// Reads a rate file; a row with a missing or non-numeric value is an error naming it.
    pub fn load(path: &Path, profile: &RateProfile) -> Result<Self> {
        let df = read_frame(path)?;
        let col = |name: &str| -> Result<Vec<Option<String>>> {
            let c = df.column(name).map_err(|_| {
                Error::Input(format!("{}: missing rate column `{name}`", path.display()))
            })?;
            let s = c.str().map_err(|source| Error::Polars {
                context: format!("reading `{name}`"),
                source,
            })?;
            Ok(s.iter()
                .map(|v| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
                .collect())
        };
        let optional = |name: &Option<String>| -> Result<Option<Vec<Option<String>>>> {
            name.as_deref().map(col).transpose()
        };
        let (carrier, origin, dest) = (
            col(&profile.carrier)?,
            col(&profile.origin)?,
            col(&profile.destination)?,
        );
        let numbers = [
            (&profile.min_weight_kg, col(&profile.min_weight_kg)?),
            (&profile.max_weight_kg, col(&profile.max_weight_kg)?),
            (&profile.minimum_charge, col(&profile.minimum_charge)?),
            (&profile.rate_per_kg, col(&profile.rate_per_kg)?),
        ];
        let (service, mode, transit) = (
            optional(&profile.service)?,
            optional(&profile.mode)?,
            optional(&profile.transit_days)?,
        );
        let mut table = RateTable::default();
        for i in 0..df.height() {
            let text = |name: &str, v: &Option<String>| {
                v.clone().ok_or_else(|| {
                    Error::Input(format!(
                        "{}: row {}, column `{name}` is empty",
                        path.display(),
                        i + 1
                    ))
                })
            };
            let mut num = [0.0; 4];
            for (k, (name, values)) in numbers.iter().enumerate() {
                let v = text(name, &values[i])?;
                num[k] = v.parse().map_err(|_| {
                    Error::Input(format!(
                        "{}: row {}, column `{name}`: `{v}` is not a number",
                        path.display(),
                        i + 1
                    ))
                })?;
            }
            let rate = Rate {
                min_kg: num[0],
                max_kg: num[1],
                minimum_charge: num[2],
                per_kg: num[3],
                service: service.as_ref().and_then(|s| s[i].clone()),
                mode: mode.as_ref().and_then(|s| s[i].clone()),
                transit_days: transit
                    .as_ref()
                    .and_then(|s| s[i].as_deref())
                    .and_then(|v| v.parse().ok()),
            };
            table
                .lanes
                .entry(lane(
                    &text(&profile.origin, &origin[i])?,
                    &text(&profile.destination, &dest[i])?,
                ))
                .or_default()
                .entry(text(&profile.carrier, &carrier[i])?)
                .or_default()
                .push(rate);
        }
        if table.lanes.is_empty() {
            return Err(Error::Input(format!("{}: no rates", path.display())));
        }
        Ok(table)
    }

    /// Whether `carrier` has a rate on any lane.
    pub fn knows(&self, carrier: &str) -> bool {
        self.lanes.values().any(|c| c.contains_key(carrier))
    }

    /// Carriers with a rate on the lane.
    pub fn carriers(&self, origin: &str, destination: &str) -> Vec<&str> {
        self.lanes
            .get(&lane(origin, destination))
            .map(|c| c.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The cheapest matching rate's price for `weight_kg` (the lane's lowest minimum charge
    /// when the weight is unknown); `None` when the carrier has no rate on the lane or no band
    /// holds the weight.
    pub fn quote(
        &self,
        carrier: &str,
        origin: &str,
        destination: &str,
        weight_kg: Option<f64>,
    ) -> Option<Quote> {
        let rates = self.lanes.get(&lane(origin, destination))?.get(carrier)?;
        let weight = weight_kg.filter(|w| w.is_finite() && *w >= 0.0);
        rates
            .iter()
            .filter(|r| weight.is_none_or(|w| r.min_kg <= w && w <= r.max_kg))
            .map(|r| Quote {
                cost: match weight {
                    Some(w) => r.minimum_charge.max(r.per_kg * w),
                    None => r.minimum_charge,
                },
                transit_days: r.transit_days,
                service: r.service.clone(),
            })
            .min_by(|a, b| a.cost.total_cmp(&b.cost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_is_the_default() {
        let text = include_str!("../../../data/profiles/rates/freight_rates.toml");
        assert_eq!(
            RateProfile::from_toml(text).unwrap(),
            RateProfile::default()
        );
    }

    #[test]
    fn reads_the_freight_rates_shape_and_quotes_by_band() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rates.csv");
        std::fs::write(
            &path,
            "Carrier,orig_port_cd,dest_port_cd,minm_wgh_qty,max_wgh_qty,svc_cd,minimum cost,rate,mode_dsc,tpt_day_cnt,Carrier type\n\
             V1,P1,P2,0,99.99,DTD,40,0.9,AIR   ,2,X\n\
             V1,P1,P2,100,999,DTD,40,0.7,AIR   ,2,X\n\
             V1,P1,P2,0,999,CRF,60,0.5,GROUND,5,X\n\
             V2,P1,P2,0,999,DTD,10,1.5,GROUND,4,X\n",
        )
        .unwrap();
        let t = RateTable::load(&path, &RateProfile::default()).unwrap();
        assert_eq!(t.carriers("P1", "P2"), vec!["V1", "V2"]);
        assert!(t.carriers("P2", "P1").is_empty());
        // 50 kg: minimum charges dominate; the cheaper of V1's two matching services wins.
        let q = t.quote("V1", "P1", "P2", Some(50.0)).unwrap();
        assert_eq!((q.cost, q.transit_days), (45.0, Some(2.0)));
        // 500 kg: 0.5/kg ground beats 0.7/kg air.
        let q = t.quote("V1", "P1", "P2", Some(500.0)).unwrap();
        assert_eq!((q.cost, q.service.as_deref()), (250.0, Some("CRF")));
        assert_eq!(
            t.quote("V2", "P1", "P2", Some(5000.0)),
            None,
            "outside every band"
        );
        assert_eq!(t.quote("V2", "P1", "P2", None).unwrap().cost, 10.0);

        std::fs::write(&path, "Carrier,orig_port_cd\nV1,P1\n").unwrap();
        let e = RateTable::load(&path, &RateProfile::default()).unwrap_err();
        assert!(
            e.to_string().contains("missing rate column `dest_port_cd`"),
            "{e}"
        );
    }
}
