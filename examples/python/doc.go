// Package python holds the test of the Python example: worker.py, an exec
// program computing a pure-Python feature-hashing embedding, run by a real
// ferry in every mode, and pool.py, the same function through Python's
// ProcessPoolExecutor, checked to give the same vectors. It has no Go code
// of its own; see README.md.
package python
