//! Market data in: validated bars, labelled tables, and file and `DataFrame` I/O.

pub mod bars;
pub mod io;
pub mod table;

pub use bars::{BarColumns, Bars, RepairReport};
pub use io::{LoadOptions, Loaded, bars_from_dataframe, bars_to_dataframe, load, load_many, read_bars, write_frame};
pub use table::{LabeledTable, read_table, table_from_dataframe};
