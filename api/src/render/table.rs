//! Column alignment like Go's `text/tabwriter` as kubectl and cilium use it
//! (`tabwriter.NewWriter(w, 5, 0, 3, ' ', 0)`): every column but the last is as wide as its
//! widest cell plus 3 spaces, at least 5; the last column is not padded.

/// Rows of cells, the first row usually the header.
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

/// Minimum column width, padding included.
const MIN_WIDTH: usize = 5;
/// Spaces after the widest cell of a column.
const PADDING: usize = 3;

impl Table {
    /// A table whose first row is `header`.
    pub(crate) fn with_header(header: &[&str]) -> Table {
        let mut t = Table::default();
        t.row(header.iter().map(|s| s.to_string()).collect());
        t
    }

    /// Appends a row; rows may be shorter than others (missing cells are empty).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Appends a row that repeats nothing: `cells` go in columns `first..`, earlier cells
    /// are empty (continuation lines, e.g. an identity's second label).
    pub(crate) fn continuation(&mut self, first: usize, cells: Vec<String>) {
        let mut row = vec![String::new(); first];
        row.extend(cells);
        self.rows.push(row);
    }

    /// The aligned text, one line per row, trailing spaces trimmed.
    pub(crate) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count() + PADDING).max(MIN_WIDTH);
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}
