//! Market data in: validated bars, file and `DataFrame` I/O, and the model-ready dataset.

pub mod bars;
pub mod dataset;
pub mod io;
pub mod stitch;
pub mod synthetic;
pub mod table;

pub use bars::{BarColumns, Bars, RepairReport};
pub use dataset::{Dataset, DropReport};
pub use io::{LoadOptions, Loaded, bars_from_dataframe, bars_to_dataframe, load, load_many, read_bars, write_frame};
pub use table::{LabeledTable, read_table, table_from_dataframe};
