// Renders a Helm chart's templates with Go's text/template — the engine Helm itself uses — for
// tests on machines without Helm. It implements only the functions the dirsync chart calls and
// fails on any other (text/template refuses a template naming an unknown function):
//
//	include, required, default, quote, toYaml, nindent, trunc, trimSuffix
//
// besides text/template's built-ins (printf, eq, ne, not, and, or, len, with, range…). Like Helm,
// templates run with missingkey=zero and "<no value>" is removed from the output; files whose name
// starts with "_" only define templates. toYaml writes equivalent YAML, not Helm's exact text:
// every string is double-quoted, map keys sorted.
//
// Usage: helm-render <chart dir> <input.json>, where input.json is
// {"Values": {...}, "Chart": {"Name", "Version", "AppVersion"}, "Release": {"Name", "Namespace"}}
// (YAML already parsed by the caller: Go's standard library has no YAML parser). Prints
// {"<template path>": "<rendered text>"} as JSON, or the first error on stderr with exit code 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

func empty(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.String, reflect.Map, reflect.Slice, reflect.Array:
		return r.Len() == 0
	case reflect.Bool:
		return !r.Bool()
	case reflect.Float32, reflect.Float64:
		return r.Float() == 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int() == 0
	}
	return false
}

func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		// JSON numbers: integral ones as integers, as Helm prints ports and counts.
		if t == float64(int64(t)) {
			return strconv.FormatInt(int64(t), 10)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

func yamlScalar(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return scalar(v)
}

// toYaml writes block-style YAML of JSON-shaped data at the given indentation.
func toYaml(v any, indent int, b *strings.Builder) {
	pad := strings.Repeat(" ", indent)
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			b.WriteString(pad + "{}\n")
			return
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := t[k]
			if isBlock(child) {
				b.WriteString(pad + strconv.Quote(k) + ":\n")
				toYaml(child, indent+2, b)
			} else {
				b.WriteString(pad + strconv.Quote(k) + ": " + inline(child) + "\n")
			}
		}
	case []any:
		if len(t) == 0 {
			b.WriteString(pad + "[]\n")
			return
		}
		for _, item := range t {
			if isBlock(item) {
				var inner strings.Builder
				toYaml(item, indent+2, &inner)
				// The first line of the item goes after "- ".
				b.WriteString(pad + "- " + strings.TrimPrefix(inner.String(), pad+"  "))
			} else {
				b.WriteString(pad + "- " + inline(item) + "\n")
			}
		}
	default:
		b.WriteString(pad + inline(v) + "\n")
	}
}

func isBlock(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		return len(t) > 0
	case []any:
		return len(t) > 0
	}
	return false
}

func inline(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "{}"
	case []any:
		return "[]"
	default:
		return yamlScalar(t)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: helm-render <chart dir> <input.json>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(chartDir, inputPath string) error {
	raw, err := os.ReadFile(inputPath)
	if err != nil {
		return err
	}
	var input map[string]any
	if err := json.Unmarshal(raw, &input); err != nil {
		return err
	}
	release, _ := input["Release"].(map[string]any)
	if release == nil {
		return errors.New("input.json has no Release")
	}
	release["Service"] = "Helm"

	root := template.New("chart").Option("missingkey=zero")
	root.Funcs(template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var buf bytes.Buffer
			if err := root.ExecuteTemplate(&buf, name, data); err != nil {
				return "", err
			}
			return buf.String(), nil
		},
		"required": func(message string, v any) (any, error) {
			if v == nil || v == "" {
				return nil, errors.New(message)
			}
			return v, nil
		},
		"default": func(d any, given ...any) any {
			if len(given) == 0 || empty(given[0]) {
				return d
			}
			return given[0]
		},
		"quote": func(values ...any) string {
			out := make([]string, 0, len(values))
			for _, v := range values {
				if v != nil {
					out = append(out, strconv.Quote(scalar(v)))
				}
			}
			return strings.Join(out, " ")
		},
		"toYaml": func(v any) string {
			var b strings.Builder
			toYaml(v, 0, &b)
			return strings.TrimSuffix(b.String(), "\n")
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"trunc": func(n int, s string) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	})

	var paths []string
	err = filepath.WalkDir(filepath.Join(chartDir, "templates"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, path := range paths {
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		if _, err := root.New(rel).Parse(string(text)); err != nil {
			return err
		}
	}

	out := map[string]string{}
	for _, path := range paths {
		rel, _ := filepath.Rel(chartDir, path)
		if strings.HasPrefix(filepath.Base(rel), "_") {
			continue
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, rel, input); err != nil {
			return err
		}
		out[rel] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	encoded, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(encoded)
	return err
}
