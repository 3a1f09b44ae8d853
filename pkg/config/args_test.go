package config

import (
	"strings"
	"testing"
)

func TestArgsOverridesAndOrder(t *testing.T) {
	own := Args{"secure-port": "6443", "profiling": "false"}
	got := own.With(Args{"leader-elect": "false"}).Merge([]string{"--profiling=true", "v=2"}).List()
	want := "--leader-elect=false --profiling=true --secure-port=6443 --v=2"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if own["profiling"] != "false" {
		t.Error("Merge changed its receiver")
	}
}
