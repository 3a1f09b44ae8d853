package config

import (
	"sort"
)

// Args is a component's command line as KEY -> VALUE, without leading dashes.
type Args map[string]string

// Merge returns hw's own arguments with the user's KEY=VALUE overrides applied
// on top. Overrides were checked by Validate, so malformed ones are skipped.
func (a Args) Merge(overrides []string) Args {
	out := make(Args, len(a)+len(overrides))
	for k, v := range a {
		out[k] = v
	}
	for _, o := range overrides {
		if k, v, err := SplitArg(o); err == nil {
			out[k] = v
		}
	}
	return out
}

// With returns a copy of a with b's keys set on top.
func (a Args) With(b Args) Args {
	out := make(Args, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// List renders the arguments as sorted --key=value strings, the form the
// upstream commands parse and the form hw logs.
func (a Args) List() []string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, "--"+k+"="+a[k])
	}
	return out
}
