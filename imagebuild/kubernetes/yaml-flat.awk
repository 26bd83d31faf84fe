# Flattens the block-style YAML of a kubeadm JoinConfiguration or a kubeconfig
# into path=value lines: discovery.bootstrapToken.token=abcdef.0123456789abcdef,
# discovery.bootstrapToken.caCertHashes[0]=sha256:..., clusters[0].cluster.server=...
# Handles maps, lists of scalars or maps (indented or not), flow lists of
# scalars ([a, b]), quotes and comments: what these two documents use. Anchors,
# multi-line strings and flow maps are not supported (kubeadm does not write them).
function unquote(v) {
	sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
	if (v ~ /^".*"$/ || v ~ /^'.*'$/) return substr(v, 2, length(v) - 2)
	sub(/[ \t]+#.*$/, "", v)
	return v
}
function path(upto,   p, i) {
	p = ""
	for (i = 1; i <= upto; i++) {
		if (key[i] ~ /^\[/) p = p key[i]; else p = (p == "" ? key[i] : p "." key[i])
	}
	return p
}
function keyline(n, line,   k, v, parts, i, cnt) {
	while (d > 0 && ind[d] >= n) d--
	k = line; sub(/:.*/, "", k); k = unquote(k)
	v = line; sub(/^[^:]*:/, "", v); v = unquote(v)
	if (v == "") { d++; ind[d] = n; key[d] = k; open[d] = 1; return }
	d++; ind[d] = n; key[d] = k; open[d] = 0
	if (v ~ /^\[.*\]$/) {
		v = substr(v, 2, length(v) - 2)
		cnt = (v ~ /^[ \t]*$/) ? 0 : split(v, parts, ",")
		if (cnt == 0) print path(d) "="
		for (i = 1; i <= cnt; i++) print path(d) "[" (i - 1) "]=" unquote(parts[i])
	} else if (v == "{}") {
		print path(d) "="
	} else {
		print path(d) "=" v
	}
	d--
}
BEGIN { d = 0 }
{
	sub(/\r$/, "")
	if ($0 ~ /^[ \t]*(#.*)?$/ || $0 ~ /^(---|\.\.\.)/) next
	match($0, /^ */); n = RLENGTH; line = substr($0, n + 1)
	if (line ~ /^-( |$)/) {
		while (d > 0 && (ind[d] > n || (ind[d] == n && !open[d]))) d--
		p = path(d)
		idx = count[p]++
		d++; ind[d] = n + 1; key[d] = "[" idx "]"; open[d] = 0
		rest = substr(line, 2); sub(/^ +/, "", rest)
		if (rest == "") next
		if (rest ~ /^[^'"][^:]*:( |$)/ || rest ~ /^["'][^"']*["']:( |$)/) keyline(n + 2, rest)
		else print path(d) "=" unquote(rest)
		next
	}
	keyline(n, line)
}
