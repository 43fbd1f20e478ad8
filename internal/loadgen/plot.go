package loadgen

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	colorP50  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorP99  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorMax  = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
	colorOK   = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colorErr  = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorRate = color.RGBA{R: 0x44, G: 0x44, B: 0x44, A: 0xff}
)

// Plot draws latency (p50, p99, max per second) above throughput
// (requests, acknowledged and errors per second) over the run, to a PNG or
// an SVG file, chosen by the extension.
func Plot(rep *Report, path string) error {
	series := rep.Summary.Series
	lat := plot.New()
	lat.Title.Text = fmt.Sprintf("surge load %s: latency per second", rep.RunID)
	lat.Y.Label.Text = "ms (log scale)"
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = ticks125{}
	lat.X.Label.Text = "second of the run"
	thr := plot.New()
	thr.Title.Text = "throughput per second"
	thr.Y.Label.Text = "requests/s"
	thr.X.Label.Text = "second of the run"
	for _, p := range []*plot.Plot{lat, thr} {
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
	}
	line := func(p *plot.Plot, name string, c color.Color, value func(Point) float64, dashed bool) error {
		floor := 0.0
		if p == lat {
			floor = 0.01 // a log scale has no 0
		}
		xys := make(plotter.XYs, 0, len(series))
		for _, pt := range series {
			if pt.Span < 0.25 {
				continue // too little of the last second to say anything
			}
			xys = append(xys, plotter.XY{X: float64(pt.Second) + pt.Span/2, Y: max(value(pt), floor)})
		}
		if len(xys) == 0 {
			xys = append(xys, plotter.XY{Y: max(floor, 1)})
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	for _, s := range []struct {
		p      *plot.Plot
		name   string
		c      color.Color
		v      func(Point) float64
		dashed bool
	}{
		{lat, "p50", colorP50, func(p Point) float64 { return p.P50 }, false},
		{lat, "p99", colorP99, func(p Point) float64 { return p.P99 }, false},
		{lat, "max", colorMax, func(p Point) float64 { return p.Max }, true},
		{thr, "requests", colorRate, func(p Point) float64 { return float64(p.Requests) / p.Span }, false},
		{thr, "2xx", colorOK, func(p Point) float64 { return float64(p.OK) / p.Span }, true},
		{thr, "errors", colorErr, func(p Point) float64 { return float64(p.Errors) / p.Span }, false},
	} {
		if err := line(s.p, s.name, s.c, s.v, s.dashed); err != nil {
			return err
		}
	}
	thr.Y.Min = 0

	const w, h = 22 * vg.Centimeter, 18 * vg.Centimeter
	var canvas vg.CanvasWriterTo
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		canvas = vgsvg.New(w, h)
	case ".png":
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))}
	default:
		return fmt.Errorf("%s: the plot is written as .png or .svg", path)
	}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 5}
	dc := draw.New(canvas)
	plots := [][]*plot.Plot{{lat}, {thr}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ticks125 marks a log axis at 1, 2 and 5 times the powers of ten.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for exp := math.Floor(math.Log10(lo)); exp <= math.Ceil(math.Log10(hi)); exp++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, exp)
			if v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ticks
}
