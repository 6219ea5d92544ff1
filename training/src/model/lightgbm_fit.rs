//! Fitting through LightGBM's C API directly. `lightgbm3` builds its `Dataset` with no
//! parameters, so LightGBM bins it with defaults and then ignores every dataset parameter the
//! booster is given (`categorical_feature`, `max_bin`, ...): categorical codes were split on as
//! numbers. Here the dataset and the booster get the same parameters; prediction, SHAP and
//! loading stay with `lightgbm3`, which reads the model text this writes.

use std::ffi::{c_char, c_void, CStr, CString};

use lightgbm3_sys as sys;

use crate::error::{Error, Result};
use crate::progress::Progress;

fn check(code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: LightGBM returns a pointer to a thread-local, NUL-terminated message.
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) };
    Err(Error::Model(format!(
        "LightGBM: {}",
        message.to_string_lossy()
    )))
}

/// LightGBM's `key=value key=value` parameter string.
pub fn parameter_string(params: &serde_json::Value) -> Result<CString> {
    let map = params
        .as_object()
        .ok_or_else(|| Error::Model("LightGBM parameters must be an object".into()))?;
    let text = map
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    CString::new(text).map_err(|_| Error::Model("a LightGBM parameter contains NUL".into()))
}

struct Dataset(sys::DatasetHandle);

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_DatasetCreateFromMat and is freed once.
        unsafe { sys::LGBM_DatasetFree(self.0) };
    }
}

impl Dataset {
    /// A dataset of the rows of `parts` (row-major, `n_cols` values a row) in order: LightGBM
    /// builds the same dataset from several matrices as from their concatenation, so a set
    /// made of runs of a larger matrix is never copied into one.
    fn new(
        parts: &[&[f64]],
        y: &[f32],
        n_cols: usize,
        params: &CString,
        reference: Option<&Dataset>,
    ) -> Result<Self> {
        let values: usize = parts.iter().map(|p| p.len()).sum();
        if n_cols == 0 || y.is_empty() || values != y.len() * n_cols {
            return Err(Error::Model(format!(
                "{values} values for {} rows of {n_cols} features",
                y.len()
            )));
        }
        let too_many = || Error::Model("too many rows for LightGBM (2^31)".into());
        let rows = i32::try_from(y.len()).map_err(|_| too_many())?;
        let mut data: Vec<*const c_void> =
            parts.iter().map(|p| p.as_ptr() as *const c_void).collect();
        let mut counts: Vec<i32> = parts
            .iter()
            .map(|p| i32::try_from(p.len() / n_cols).map_err(|_| too_many()))
            .collect::<Result<_>>()?;
        let mut row_major = vec![1; parts.len()];
        let mut handle = std::ptr::null_mut();
        // SAFETY: each part holds counts[j] * n_cols f64 values and `y` rows f32 labels; the
        // pointer arrays have one entry per part; LightGBM copies the values.
        unsafe {
            check(sys::LGBM_DatasetCreateFromMats(
                parts.len() as i32,
                data.as_mut_ptr(),
                sys::C_API_DTYPE_FLOAT64 as i32,
                counts.as_mut_ptr(),
                n_cols as i32,
                row_major.as_mut_ptr(),
                params.as_ptr(),
                reference.map_or(std::ptr::null_mut(), |r| r.0),
                &mut handle,
            ))?;
            let dataset = Dataset(handle);
            let label = CString::new("label").expect("no NUL");
            check(sys::LGBM_DatasetSetField(
                handle,
                label.as_ptr(),
                y.as_ptr() as *const c_void,
                rows,
                sys::C_API_DTYPE_FLOAT32 as i32,
            ))?;
            Ok(dataset)
        }
    }

    fn set_names(&self, names: &[String]) -> Result<()> {
        let names: Vec<CString> = names
            .iter()
            .map(|n| CString::new(n.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::Model("a feature name contains NUL".into()))?;
        let mut ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        // SAFETY: `ptrs` points at live NUL-terminated strings for the duration of the call.
        unsafe {
            check(sys::LGBM_DatasetSetFeatureNames(
                self.0,
                ptrs.as_mut_ptr(),
                ptrs.len() as i32,
            ))
        }
    }
}

struct Booster(sys::BoosterHandle);

impl Drop for Booster {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_BoosterCreate and is freed once.
        unsafe { sys::LGBM_BoosterFree(self.0) };
    }
}

/// What a fit needs: row-major features (in parts), labels, and when early stopping,
/// held-out rows; and where to report each boosting iteration.
pub struct FitInput<'a> {
    pub x: Vec<&'a [f64]>,
    pub y: &'a [f32],
    pub n_cols: usize,
    pub names: &'a [String],
    pub held_out: Option<(Vec<&'a [f64]>, &'a [f32])>,
    pub progress: &'a dyn Progress,
}

/// How long to fit: at most `iterations` trees, stopping after `patience` rounds without a
/// better held-out `metric` (higher is better when `higher_is_better`).
pub struct Schedule {
    pub iterations: u32,
    pub patience: Option<u32>,
    pub higher_is_better: bool,
}

/// Fits and returns LightGBM's model text, cut at the best held-out iteration.
pub fn fit(
    input: &FitInput<'_>,
    params: &serde_json::Value,
    schedule: &Schedule,
) -> Result<String> {
    let params = parameter_string(params)?;
    let train = Dataset::new(&input.x, input.y, input.n_cols, &params, None)?;
    train.set_names(input.names)?;
    let valid = match &input.held_out {
        Some((x, y)) if !y.is_empty() => {
            Some(Dataset::new(x, y, input.n_cols, &params, Some(&train))?)
        }
        _ => None,
    };
    let mut handle = std::ptr::null_mut();
    // SAFETY: `train` outlives the booster (dropped after it, in reverse declaration order).
    unsafe {
        check(sys::LGBM_BoosterCreate(
            train.0,
            params.as_ptr(),
            &mut handle,
        ))?
    };
    let booster = Booster(handle);
    if let Some(valid) = &valid {
        // SAFETY: both handles are live; `valid` outlives the booster.
        unsafe { check(sys::LGBM_BoosterAddValidData(booster.0, valid.0))? };
    }
    let patience = schedule.patience.filter(|_| valid.is_some());
    let (mut best, mut best_iter) = (f64::NAN, 0u32);
    let mut done = 0u32;
    for iter in 1..=schedule.iterations {
        let mut finished = 0;
        // SAFETY: the booster handle is live.
        unsafe { check(sys::LGBM_BoosterUpdateOneIter(booster.0, &mut finished))? };
        if finished != 0 {
            break;
        }
        done = iter;
        input.progress.advance(1);
        let Some(patience) = patience else { continue };
        let mut n = 0;
        let mut results = [0.0f64; 8];
        // SAFETY: one metric is configured; `results` has room for several.
        unsafe {
            check(sys::LGBM_BoosterGetEval(
                booster.0,
                1,
                &mut n,
                results.as_mut_ptr(),
            ))?
        };
        let score = results[0];
        let better = best.is_nan()
            || if schedule.higher_is_better {
                score > best
            } else {
                score < best
            };
        if better {
            (best, best_iter) = (score, iter);
        } else if iter - best_iter >= patience {
            break;
        }
    }
    let keep = if patience.is_some() && best_iter > 0 {
        best_iter
    } else {
        done
    };
    model_string(&booster, keep)
}

fn model_string(booster: &Booster, iterations: u32) -> Result<String> {
    let mut len = 0i64;
    let mut buffer = vec![0u8; 1 << 20];
    for _ in 0..2 {
        // SAFETY: `buffer` has `buffer.len()` writable bytes; LightGBM reports the needed size.
        unsafe {
            check(sys::LGBM_BoosterSaveModelToString(
                booster.0,
                0,
                iterations as i32,
                sys::C_API_FEATURE_IMPORTANCE_GAIN as i32,
                buffer.len() as i64,
                &mut len,
                buffer.as_mut_ptr() as *mut c_char,
            ))?
        };
        if (len as usize) <= buffer.len() {
            buffer.truncate(len.max(1) as usize - 1);
            return String::from_utf8(buffer)
                .map_err(|_| Error::Model("LightGBM wrote a model that is not UTF-8".into()));
        }
        buffer = vec![0u8; len as usize];
    }
    Err(Error::Model("LightGBM's model text kept growing".into()))
}
