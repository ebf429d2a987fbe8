//go:build !unix

package main

import "log/slog"

func checkNoFile(*slog.Logger, int) {}
