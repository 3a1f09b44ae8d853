// Command buildtool prepares what the hw binary embeds. Run by the Makefile:
//
//	buildtool image -ref NAME -out FILE.tar -entrypoint /pause SRC:DEST ...
//	buildtool pack -out DIR FILE ...
//
// pack writes each FILE zstd-compressed into DIR plus a manifest listing each
// file's name, mode and sha256, which hw checks when it extracts them.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/hw-k8s/hw/pkg/ociimage"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: buildtool image|pack ...")
	}
	var err error
	switch os.Args[1] {
	case "image":
		err = image(os.Args[2:])
	case "pack":
		err = pack(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "buildtool:", msg)
	os.Exit(1)
}

func image(args []string) error {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	ref := fs.String("ref", "", "image name")
	out := fs.String("out", "", "output tarball")
	entry := fs.String("entrypoint", "", "entrypoint path in the image")
	fs.Parse(args)
	spec := ociimage.Spec{Ref: *ref, Entrypoint: []string{*entry}}
	for _, a := range fs.Args() {
		src, dest, ok := strings.Cut(a, ":")
		if !ok {
			return fmt.Errorf("file %q: want SRC:DEST", a)
		}
		spec.Files = append(spec.Files, ociimage.File{Source: src, Path: dest})
	}
	return ociimage.Write(spec, *out)
}

func pack(args []string) error {
	fs := flag.NewFlagSet("pack", flag.ExitOnError)
	out := fs.String("out", "", "output folder")
	fs.Parse(args)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var manifest []string
	for _, path := range fs.Args() {
		line, err := packOne(path, *out)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		manifest = append(manifest, line)
	}
	sort.Strings(manifest)
	return os.WriteFile(filepath.Join(*out, "manifest"), []byte(strings.Join(manifest, "\n")+"\n"), 0o644)
}

func packOne(path, outDir string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return "", err
	}
	name := filepath.Base(path)
	tmp := filepath.Join(outDir, name+".zst.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	enc, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return "", err
	}
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(enc, sum), in); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(outDir, name+".zst")); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %o %s", name, info.Mode().Perm(), hex.EncodeToString(sum.Sum(nil))), nil
}
