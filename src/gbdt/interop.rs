//! linfa interop: fit [`GbdtParams`] on a linfa `DatasetBase` through linfa's own `Fit` trait
//! and predict through `PredictInplace`, so the booster drops into linfa pipelines.
//!
//! Records of any linfa float type are converted once to a column-major `f32` matrix (the
//! booster's input); single targets may be floats, integers (class ids) or booleans. linfa's
//! per-row `f32` weights become sample weights. Prediction writes the first output
//! (P(y = 1) for binary, the value for regression); use [`Gbdt::predict`] for all outputs.

use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::PredictInplace;
use ndarray::{Array1, Array2, ArrayBase, Data, Ix2, ShapeBuilder};

use crate::error::{Error, Result};
use crate::gbdt::booster::{Gbdt, TrainData};
use crate::gbdt::params::GbdtParams;

/// A linfa target value the booster can use as a label.
pub trait LabelValue: Copy {
    /// The label as f64 (class ids as 0, 1, …; booleans as 0/1).
    fn to_label(self) -> f64;
}

macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl LabelValue for $t {
            fn to_label(self) -> f64 {
                self as f64
            }
        }
    )*};
}
label_value!(f32, f64, usize, u8, u16, u32, u64, i32, i64);

impl LabelValue for bool {
    fn to_label(self) -> f64 {
        self as u8 as f64
    }
}

/// Column-major f32 copy of any float matrix.
pub fn to_f32_matrix<F: linfa::Float, D: Data<Elem = F>>(x: &ArrayBase<D, Ix2>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros(x.dim().f());
    out.zip_mut_with(x, |o, v| *o = v.to_f32().unwrap_or(f32::NAN));
    out
}

impl<F, D, T> linfa::traits::Fit<ArrayBase<D, Ix2>, T, Error> for GbdtParams
where
    F: linfa::Float,
    D: Data<Elem = F>,
    T: AsSingleTargets,
    T::Elem: LabelValue,
{
    type Object = Gbdt;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<Gbdt> {
        let x = to_f32_matrix(dataset.records());
        let y: Vec<f64> = dataset.as_single_targets().iter().map(|v| v.to_label()).collect();
        let w: Option<Vec<f64>> = dataset.weights().map(|w| w.iter().map(|&v| v as f64).collect());
        let mut data = TrainData::new(x.view(), &y)?;
        if let Some(w) = &w {
            data = data.with_weights(w)?;
        }
        let mut model = self.fit_data(&data, None)?;
        model.feature_names = dataset.feature_names().to_vec();
        Ok(model)
    }
}

impl<F: linfa::Float, D: Data<Elem = F>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for Gbdt {
    /// Panics (linfa's contract) when the feature count or target length does not match.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        assert_eq!(x.nrows(), y.len(), "linfa predict: target length must equal the number of rows");
        let xf = to_f32_matrix(x);
        let p = self.predict(xf.view()).expect("linfa predict: feature count must match the model");
        y.assign(&p.column(0));
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::traits::{Fit, Predict};

    #[test]
    fn fits_and_predicts_through_linfa_traits() {
        let x = Array2::from_shape_fn((300, 3), |(r, c)| ((r * (c + 2)) % 23) as f64);
        let y: Array1<usize> = x.column(0).mapv(|v| (v > 11.0) as usize);
        let ds = linfa::Dataset::new(x.clone(), y.clone());
        let model = Fit::fit(&GbdtParams::lightgbm().rounds(20).min_data_in_leaf(5), &ds).unwrap();
        let pred: Array1<f64> = Predict::predict(&model, &x);
        let acc = pred.iter().zip(&y).filter(|(p, t)| (**p > 0.5) == (**t == 1)).count();
        assert_eq!(acc, 300);
    }
}
