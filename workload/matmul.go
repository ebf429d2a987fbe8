package workload

// matmulT sets c = a·bᵀ + bias, where a is rows×k, bt is m×k (the weight
// matrix stored transposed, so both operands of every dot product are
// contiguous), c is rows×m, all row-major.
//
// Each element is one float32 dot product summed in ascending k from zero,
// then the bias added: the same operations in the same order whatever the
// tiling and however many rows, so a batch gives the bits of its single
// documents. Explicit float32 conversions stop FMA fusion on arm64 and
// friends, so every GOARCH rounds alike.
//
// Tiling: 2 rows × 4 columns of c are accumulated in 8 registers, loading 6
// values per 8 multiply-adds; the columns are walked in panels small enough
// (≤256 KB of bt) to stay in L2 while every row pair passes over them.
func matmulT(c, a, bt, bias []float32, rows, k, m int) {
	panel := max(4, (64<<10)/k&^3) // columns per panel
	for j0 := 0; j0 < m; j0 += panel {
		j1 := min(j0+panel, m)
		i := 0
		for ; i+2 <= rows; i += 2 {
			a0, a1 := a[i*k:(i+1)*k], a[(i+1)*k:(i+2)*k]
			c0, c1 := c[i*m:(i+1)*m], c[(i+1)*m:(i+2)*m]
			j := j0
			for ; j+4 <= j1; j += 4 {
				dot2x4(a0, a1, bt[j*k:(j+4)*k], k, c0[j:j+4], c1[j:j+4], bias[j:j+4])
			}
			for ; j < j1; j++ {
				b := bt[j*k : (j+1)*k]
				c0[j] = dot(a0, b) + bias[j]
				c1[j] = dot(a1, b) + bias[j]
			}
		}
		for ; i < rows; i++ {
			a0, c0 := a[i*k:(i+1)*k], c[i*m:(i+1)*m]
			j := j0
			for ; j+4 <= j1; j += 4 {
				dot1x4(a0, bt[j*k:(j+4)*k], k, c0[j:j+4], bias[j:j+4])
			}
			for ; j < j1; j++ {
				c0[j] = dot(a0, bt[j*k:(j+1)*k]) + bias[j]
			}
		}
	}
}

// dot2x4 computes the 2×4 tile c[r][q] = a_r·b_q + bias[q] for rows a0, a1
// and the four consecutive k-length rows of b4.
func dot2x4(a0, a1, b4 []float32, k int, c0, c1, bias []float32) {
	b0, b1, b2, b3 := b4[:k], b4[k:2*k], b4[2*k:3*k], b4[3*k:4*k]
	a1 = a1[:len(a0)]
	b0, b1, b2, b3 = b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
	var s00, s01, s02, s03, s10, s11, s12, s13 float32
	for p, x := range a0 {
		y := a1[p]
		v0, v1, v2, v3 := b0[p], b1[p], b2[p], b3[p]
		s00 += float32(x * v0)
		s01 += float32(x * v1)
		s02 += float32(x * v2)
		s03 += float32(x * v3)
		s10 += float32(y * v0)
		s11 += float32(y * v1)
		s12 += float32(y * v2)
		s13 += float32(y * v3)
	}
	c0, c1, bias = c0[:4], c1[:4], bias[:4]
	c0[0], c0[1], c0[2], c0[3] = s00+bias[0], s01+bias[1], s02+bias[2], s03+bias[3]
	c1[0], c1[1], c1[2], c1[3] = s10+bias[0], s11+bias[1], s12+bias[2], s13+bias[3]
}

// dot1x4 is dot2x4 for a single row (batches of one document).
func dot1x4(a0, b4 []float32, k int, c0, bias []float32) {
	b0, b1, b2, b3 := b4[:k], b4[k:2*k], b4[2*k:3*k], b4[3*k:4*k]
	b0, b1, b2, b3 = b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
	var s0, s1, s2, s3 float32
	for p, x := range a0 {
		s0 += float32(x * b0[p])
		s1 += float32(x * b1[p])
		s2 += float32(x * b2[p])
		s3 += float32(x * b3[p])
	}
	c0, bias = c0[:4], bias[:4]
	c0[0], c0[1], c0[2], c0[3] = s0+bias[0], s1+bias[1], s2+bias[2], s3+bias[3]
}

// dot is the one-element form of dot2x4, with the same summation order.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for p, x := range a {
		s += float32(x * b[p])
	}
	return s
}
