//! The report's plot, drawn by plotters into a PNG: four panels (filter,
//! capture path, consumers, scale) from the measured figures. Text is set
//! in DejaVu Sans, read at run time from Debian's fonts-dejavu-core.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::capture::{Consumer, Pipe, Row};
use crate::filter::FilterResult;
use crate::scale::ScaleRow;

/// Where Debian's fonts-dejavu-core puts the font.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

type Err = Box<dyn std::error::Error>;

/// Registers DejaVu Sans as "sans-serif" (once).
fn load_font() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT)
            .map_err(|e| format!("{FONT}: {e} (install Debian's fonts-dejavu-core)"))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{FONT}: not a font plotters can read"))
    })
    .clone()
}

const SERIES: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Grouped vertical bars: `groups` along x, one bar per series in each.
fn bars(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(String, Vec<f64>)],
    goals: &[(f64, &str)],
) -> Result<(), Err> {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .chain(goals.iter().map(|g| g.0))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        // Headroom for the legend, drawn in the upper left corner.
        * 1.5;
    let n = groups.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                groups[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    let k = series.len() as f64;
    let width = 0.8 / k;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = SERIES[s % SERIES.len()];
        chart
            .draw_series(values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(
                |(g, &v)| {
                    let x0 = g as f64 - 0.4 + s as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
                },
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    for (k, &(g, label)) in goals.iter().enumerate() {
        let color = if k == 0 { BLACK } else { RGBColor(0x80, 0x80, 0x80) };
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, g), (n as f64 - 0.5, g)],
                color.stroke_width(2),
            )))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

/// Horizontal bars for the filter programs: ns per packet, two machines.
fn filter_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    f: &FilterResult,
) -> Result<(), Err> {
    let n = f.rows.len();
    let max = f.rows.iter().map(|r| r.zbpf_ns.max(r.pcap_ns)).fold(0.0f64, f64::max) * 1.15;
    let labels: Vec<String> = f.rows.iter().map(|r| r.label.to_string()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption("1. Filter: ns per packet (lower is better)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(140)
        .build_cartesian_2d(0f64..max.max(1e-9), (n as f64 - 0.5)..-0.5f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc("ns per packet")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    for (s, (name, pick)) in [
        ("zbpf interpreter", (|r: &crate::filter::FilterRow| r.zbpf_ns) as fn(&_) -> f64),
        ("zbpf JIT (engine default)", |r| r.jit_ns.unwrap_or(f64::NAN)),
        ("libpcap bpf_filter()", |r| r.pcap_ns),
    ]
    .into_iter()
    .enumerate()
    {
        let color = SERIES[s];
        chart
            .draw_series(f.rows.iter().enumerate().filter(|(_, r)| pick(r).is_finite()).map(
                |(i, r)| {
                    let y0 = i as f64 - 0.4 + s as f64 * 0.27;
                    Rectangle::new([(0.0, y0), (pick(r), y0 + 0.25)], color.filled())
                },
            ))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Everything the plot shows.
pub struct PlotData<'a> {
    /// The filter section.
    pub filter: Option<&'a FilterResult>,
    /// The capture matrix.
    pub capture: Option<&'a [Row]>,
    /// The consumers.
    pub consumers: Option<&'a [Row]>,
    /// Scale, filters as native code.
    pub scale: Option<&'a [ScaleRow]>,
    /// Scale, filters interpreted.
    pub scale_interp: Option<&'a [ScaleRow]>,
}

/// Draws the four panels into `path` (1600 x 1200 pixels).
pub fn draw(path: &Path, data: &PlotData<'_>) -> Result<(), String> {
    load_font()?;
    draw_inner(path, data).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_inner(path: &Path, data: &PlotData<'_>) -> Result<(), Err> {
    let root = BitMapBackend::new(path, (1600, 1200)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, 2));
    if let Some(f) = data.filter {
        filter_panel(&panels[0], f)?;
    }
    if let Some(rows) = data.capture {
        let groups: Vec<(usize, u32)> = vec![(64, 96), (64, 65535), (1500, 96), (1500, 65535)];
        let names: Vec<String> =
            groups.iter().map(|(s, l)| format!("{s} B, snaplen {l}")).collect();
        let mut series = Vec::new();
        for (pipe, fast) in [
            (Pipe::Buffer, false),
            (Pipe::Zbuf, false),
            (Pipe::Buffer, true),
            (Pipe::Zbuf, true),
            (Pipe::Memcpy, false),
        ] {
            let label = match (pipe, fast) {
                (Pipe::Memcpy, _) => "memcpy baseline".to_string(),
                (p, true) => format!("{} BPF_T_FAST", p.name()),
                (p, false) => p.name().to_string(),
            };
            let values = groups
                .iter()
                .map(|&(size, snaplen)| {
                    rows.iter()
                        .find(|r| {
                            r.spec.size == size
                                && r.spec.snaplen == snaplen
                                && r.spec.pipe == pipe
                                && r.spec.fast_ts == fast
                        })
                        .map_or(f64::NAN, |r| r.best.ns_per_packet())
                })
                .collect();
            series.push((label, values));
        }
        bars(
            &panels[1],
            "2. Capture path, one core: ns per packet (lower is better)",
            "nanoseconds per packet",
            &names,
            &series,
            &[
                (1e3 / 15.0, "15 Mpps goal (64 B, default)"),
                (1e3 / 25.0, "25 Mpps goal (64 B, FAST)"),
            ],
        )?;
    }
    if let Some(rows) = data.consumers {
        let groups = [Consumer::Walk, Consumer::Checksum];
        let names: Vec<String> = groups.iter().map(|c| c.name().to_string()).collect();
        let series = [Pipe::Buffer, Pipe::Zbuf, Pipe::Memcpy]
            .iter()
            .map(|&pipe| {
                let values = groups
                    .iter()
                    .map(|&c| {
                        rows.iter()
                            .find(|r| r.spec.consumer == c && r.spec.pipe == pipe)
                            .map_or(f64::NAN, |r| r.best.ns_per_packet())
                    })
                    .collect();
                (pipe.name().to_string(), values)
            })
            .collect::<Vec<_>>();
        bars(
            &panels[2],
            "3. Consumers, 1500 B full packets: ns per packet (lower is better)",
            "nanoseconds per packet",
            &names,
            &series,
            &[],
        )?;
    }
    if let Some(rows) = data.scale {
        let names: Vec<String> =
            rows.iter().map(|r| format!("{} descriptor(s)", r.descriptors)).collect();
        let marginal = |rows: &[ScaleRow]| -> Vec<f64> {
            let base = rows.first().map_or(0.0, |r| r.ns_per_packet);
            rows.iter()
                .map(|r| {
                    if r.descriptors > 1 {
                        (r.ns_per_packet - base) / (r.descriptors - 1) as f64
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        };
        let per = |rows: &[ScaleRow]| rows.iter().map(ScaleRow::per_descriptor).collect();
        let mut series = vec![
            ("JIT: ns per packet per descriptor".to_string(), per(rows)),
            ("JIT: ns per added (rejecting) descriptor".to_string(), marginal(rows)),
        ];
        if let Some(i) = data.scale_interp {
            series.push(("interpreted: per descriptor".to_string(), per(i)));
            series.push(("interpreted: per added descriptor".to_string(), marginal(i)));
        }
        bars(
            &panels[3],
            "4. Scale, 64 B packets: ns per packet per descriptor (flat is the goal)",
            "nanoseconds",
            &names,
            &series,
            &[],
        )?;
    }
    root.present()?;
    Ok(())
}
