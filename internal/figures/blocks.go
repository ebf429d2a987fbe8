package figures

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrBlock is wrapped by errors about a markdown file's figure blocks.
var ErrBlock = errors.New("figures: bad block")

// Block is one figure block of a markdown file.
type Block struct {
	Name    string
	Content string // between the markers' lines
	Start   int    // byte offset of the opening marker
	End     int    // byte offset just past the closing marker
}

var marker = regexp.MustCompile(`(?m)^<!-- (/?)figure:([a-z0-9-]+) -->$`)

// Blocks finds the figure blocks of md, in order. Blocks do not nest; every
// opening marker has its closing one.
func Blocks(md string) ([]Block, error) {
	var bs []Block
	var open *Block
	for _, m := range marker.FindAllStringSubmatchIndex(md, -1) {
		closing, name := md[m[2]:m[3]] == "/", md[m[4]:m[5]]
		switch {
		case !closing && open != nil:
			return nil, fmt.Errorf("%w: figure:%s opens inside figure:%s", ErrBlock, name, open.Name)
		case !closing:
			open = &Block{Name: name, Start: m[0]}
		case open == nil || open.Name != name:
			return nil, fmt.Errorf("%w: /figure:%s closes no open block", ErrBlock, name)
		default:
			_, body, _ := strings.Cut(md[open.Start:m[0]], "\n")
			open.Content, open.End = body, m[1]
			bs = append(bs, *open)
			open = nil
		}
	}
	if open != nil {
		return nil, fmt.Errorf("%w: figure:%s is never closed", ErrBlock, open.Name)
	}
	return bs, nil
}

// Rewrite replaces every block's content in md with render(name).
func Rewrite(md string, render func(name string) (string, error)) (string, error) {
	bs, err := Blocks(md)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	at := 0
	for _, bl := range bs {
		content, err := render(bl.Name)
		if err != nil {
			return "", err
		}
		b.WriteString(md[at:bl.Start])
		fmt.Fprintf(&b, "<!-- figure:%s -->\n%s\n<!-- /figure:%s -->", bl.Name, strings.TrimRight(content, "\n"), bl.Name)
		at = bl.End
	}
	b.WriteString(md[at:])
	return b.String(), nil
}

// Rendering is a block's content rendered from the data in dir, for the
// markdown file at path (relative to the repository root: links in the
// block are made relative to it).
func Rendering(dir, path, name string) (string, error) {
	bl, ok := Registry[name]
	if !ok {
		return "", fmt.Errorf("%w: figure:%s in %s has no generator (Registry)", ErrBlock, name, path)
	}
	d, err := Load(dir, bl.Set)
	if err != nil {
		return "", err
	}
	content, err := bl.Render(d)
	if err != nil {
		return "", fmt.Errorf("figures: render %s: %w", name, err)
	}
	root := strings.Repeat("../", strings.Count(filepath.ToSlash(path), "/"))
	content = strings.TrimRight(content, "\n") + "\n\n" + footer(d)
	return strings.ReplaceAll(content, "{{root}}", root), nil
}

// RenderFile rewrites the blocks of the markdown file root/path from the
// data in root/docs/figures; only blocks of the given sets when sets is
// not empty.
func RenderFile(root, path string, sets ...string) error {
	full := filepath.Join(root, path)
	b, err := os.ReadFile(full)
	if err != nil {
		return err
	}
	md := string(b)
	out, err := Rewrite(md, func(name string) (string, error) {
		if bl, ok := Registry[name]; ok && len(sets) > 0 && !contains(sets, bl.Set) {
			return current(md, name), nil
		}
		return Rendering(filepath.Join(root, DataDir), path, name)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if out == md {
		return nil
	}
	return os.WriteFile(full, []byte(out), 0o644)
}

// DataDir is where the data sets live, under the repository root.
const DataDir = "docs/figures"

// current is the content of md's block name as it is.
func current(md, name string) string {
	bs, _ := Blocks(md)
	for _, b := range bs {
		if b.Name == name {
			return b.Content
		}
	}
	return ""
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
