package latency

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// The sampler reproduces the distribution's own median and 95th percentile:
// a profile's figures mean what the comments say.
func TestSamplesMatchTheirPercentiles(t *testing.T) {
	s := NewSampler(1)
	for _, d := range []Dist{AWS.SSMDelivery, AWS.ChatworkPost, AWS.LambdaInvoke, {P50: 10 * ms, P95: 10 * ms}} {
		xs := make([]time.Duration, 20000)
		for i := range xs {
			xs[i] = s.Sample(d)
		}
		slices.Sort(xs)
		p50, p95 := xs[len(xs)/2], xs[len(xs)*95/100]
		if !near(p50, d.P50, 0.05) || !near(p95, d.P95, 0.08) {
			t.Errorf("%v: sampled p50 %v p95 %v", d, p50, p95)
		}
	}
	if (NewSampler(1)).Sample(Dist{}) != 0 {
		t.Error("the zero Dist must add nothing")
	}
}

func near(got, want time.Duration, tol float64) bool {
	return float64(got) >= float64(want)*(1-tol) && float64(got) <= float64(want)*(1+tol)
}

// Every hop of the production model is set: a forgotten field would make a
// hop free and the benchmark optimistic.
func TestAWSProfileIsComplete(t *testing.T) {
	v := reflect.ValueOf(AWS)
	for i := range v.NumField() {
		d, ok := v.Field(i).Interface().(Dist)
		if ok && (d.P50 <= 0 || d.P95 < d.P50) {
			t.Errorf("%s: %v", v.Type().Field(i).Name, d)
		}
	}
}
