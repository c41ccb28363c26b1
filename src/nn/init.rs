//! Seeded parameter initialisation for candle models.
//!
//! candle's CPU random generator cannot be seeded (`Device::set_seed` bails on CPU, candle
//! issue #2651), so a [`VarBuilder`] backed by a plain `VarMap` gives different weights on
//! every run. [`SeededVars`] is a `VarMap` backend that draws every new variable from our own
//! [`Rng`], on a stream derived from the seed and the variable's *name* — so the weights depend
//! only on (seed, name, shape, init), never on the order in which layers are built.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

use crate::rng::Rng;

/// A `VarMap` whose new variables come from a seeded generator.
#[derive(Clone)]
pub struct SeededVars {
    map: VarMap,
    seed: u64,
}

/// Stable 64-bit hash of a variable name (FNV-1a), the stream id of its draws.
fn name_id(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Fan-in and fan-out of a weight shape the way PyTorch counts them.
fn fans(shape: &Shape) -> (usize, usize) {
    let dims = shape.dims();
    match dims.len() {
        0 => (1, 1),
        1 => (dims[0], dims[0]),
        _ => {
            let field: usize = dims[2..].iter().product();
            (dims[1] * field, dims[0] * field)
        }
    }
}

/// Values for `init` drawn from `rng`.
fn draw(init: Init, shape: &Shape, rng: &mut Rng) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |rng: &mut Rng, lo: f64, hi: f64| (lo + (hi - lo) * rng.next_f64()) as f32;
    match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| (mean + stdev * rng.normal()) as f32).collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| uniform(rng, lo, up)).collect(),
        Init::Kaiming { dist, fan, non_linearity } => {
            let (fan_in, fan_out) = fans(shape);
            let fan = match fan {
                candle_nn::init::FanInOut::FanIn => fan_in,
                candle_nn::init::FanInOut::FanOut => fan_out,
            };
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                candle_nn::init::NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| uniform(rng, -bound, bound)).collect()
                }
                candle_nn::init::NormalOrUniform::Normal => (0..n).map(|_| (std * rng.normal()) as f32).collect(),
            }
        }
    }
}

impl SeededVars {
    /// An empty set of variables drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededVars { map: VarMap::new(), seed }
    }

    /// A builder that creates variables here (always f32).
    pub fn builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, device.clone())
    }

    /// The underlying map (for the optimizer and safetensors).
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// Every variable with its name, sorted by name (a deterministic order).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.map.data().lock().expect("var map lock");
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl SimpleBackend for SeededVars {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut data = self.map.data().lock().expect("var map lock");
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = Rng::stream(self.seed, name_id(name));
        let values = draw(h, &s, &mut rng);
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("variable `{name}` must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().expect("var map lock").contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_whatever_the_build_order() {
        let dev = Device::Cpu;
        let a = SeededVars::new(7);
        let b = SeededVars::new(7);
        let (va, vb) = (a.builder(&dev), b.builder(&dev));
        let x1 = va.get_with_hints((3, 4), "x", candle_nn::init::DEFAULT_KAIMING_UNIFORM).unwrap();
        let y1 = va.get_with_hints(5, "y", Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
        let y2 = vb.get_with_hints(5, "y", Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
        let x2 = vb.get_with_hints((3, 4), "x", candle_nn::init::DEFAULT_KAIMING_UNIFORM).unwrap();
        assert_eq!(x1.to_vec2::<f32>().unwrap(), x2.to_vec2::<f32>().unwrap());
        assert_eq!(y1.to_vec1::<f32>().unwrap(), y2.to_vec1::<f32>().unwrap());
        let c = SeededVars::new(8);
        let y3 = c.builder(&dev).get_with_hints(5, "y", Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
        assert_ne!(y1.to_vec1::<f32>().unwrap(), y3.to_vec1::<f32>().unwrap());
        // Kaiming-uniform bounds (fan-in 4, ReLU gain √2): |w| ≤ √3·√2/2.
        let bound = (6.0f32).sqrt() / 2.0;
        assert!(x1.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.abs() <= bound));
    }
}
