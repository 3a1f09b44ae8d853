package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// applyConfigFile sets every flag named in the YAML file at path that was not
// given on the command line or in the environment. A key that is not a flag
// of this command is an error naming it.
func applyConfigFile(c *cli.Context, path string, explicit bool) error {
	return applyConfigKeys(c, path, explicit, nil)
}

// applyConfigKeys is applyConfigFile for a command that shares the server's
// file but only some of its keys (only): the others are skipped.
func applyConfigKeys(c *cli.Context, path string, explicit bool, only map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return nil // the default file is optional
		}
		return fmt.Errorf("cannot read config file %s: %v", path, unwrapPathError(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s is not valid YAML: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: want a mapping of flag names to values", path)
	}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := root.Content[i].Value, root.Content[i+1]
		if only != nil && (!only[key] || !known[key]) { // the server's keys this command has no use for
			continue
		}
		if !known[key] || key == flagConfig {
			return fmt.Errorf("config file %s line %d: unknown key %q (keys are the flag names of 'hw %s', e.g. node-ip)", path, root.Content[i].Line, key, c.Command.Name)
		}
		if c.IsSet(key) {
			continue // command line and environment win over the file
		}
		values, err := scalars(value)
		if err != nil {
			return fmt.Errorf("config file %s line %d: key %q: %v", path, value.Line, key, err)
		}
		for _, v := range values {
			if err := c.Set(key, v); err != nil {
				return fmt.Errorf("config file %s line %d: key %q: %v", path, value.Line, key, err)
			}
		}
	}
	return nil
}

// scalars returns the values a flag's Set takes: one per list element, or one
// for a scalar, as written in the file (so 0644 stays 0644).
func scalars(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		var out []string
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return nil, errors.New("list elements must be plain values")
			}
			out = append(out, e.Value)
		}
		return out, nil
	}
	return nil, errors.New("want a value or a list of values")
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
