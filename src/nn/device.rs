//! Where the networks run: `cpu` (default), `cuda:N` (with the `cuda` cargo feature) or
//! `auto` (the first CUDA device when the feature is built and a device answers, else CPU).

use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A device choice as written in configs and on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device N.
    Cuda(usize),
    /// CUDA 0 when available, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "auto" => Ok(DeviceChoice::Auto),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| Error::param("device", format!("`{s}` is not cpu, cuda:N or auto"))),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        match d {
            DeviceChoice::Cpu => "cpu".into(),
            DeviceChoice::Cuda(n) => format!("cuda:{n}"),
            DeviceChoice::Auto => "auto".into(),
        }
    }
}

impl DeviceChoice {
    /// Open the device; `cuda:N` without the `cuda` feature (or without a GPU) is an error
    /// that says so, `auto` falls back to the CPU.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::param(
                        "device",
                        "this build has no CUDA support (build with `--features cuda`)",
                    ));
                }
                Device::new_cuda(n).map_err(|e| Error::param("device", format!("cuda:{n}: {e}")))
            }
            DeviceChoice::Auto => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_opens() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().to_string().contains("`gpu`"));
        assert!(DeviceChoice::Cpu.open().unwrap().is_cpu());
        assert!(DeviceChoice::Auto.open().is_ok());
        let json = serde_json::to_string(&DeviceChoice::Cuda(2)).unwrap();
        assert_eq!(json, "\"cuda:2\"");
        if !candle_core::utils::cuda_is_available() {
            assert!(DeviceChoice::Cuda(0).open().unwrap_err().to_string().contains("--features cuda"));
        }
    }
}
