#!/usr/bin/env python3
"""Emulation-lab boot benchmark (bench/run-lab.sh): server CPU sampler and summarizer.

  lab-summary.py sample --mode MODE --anchor A --out FILE
      Follows the server's processes until SIGTERM; writes FILE (JSON) every few
      seconds and at the end. Every 0.5 s it reads /proc/<pid>/stat (utime+stime,
      the largest value seen per process, so children that exit before the end still
      count with what they had used at the last look) of every process in the
      server's network namespace, the bytes that namespace's eth0 sent
      (/proc/<pid>/net/dev) and the machine's /proc/stat. MODE / ANCHOR:
        ref-host     ANCHOR = netns name (the reference's e2eref-srv)
        bf-host      ANCHOR = bootfarm's config file: the `serve --config ANCHOR` process
        docker-name  ANCHOR = container name (the reference's e2eref-server)
        docker-mount ANCHOR = a directory some mount of the container comes from
                     (bootfarm's lab container mounts its work dir's state/)
  lab-summary.py summarize RAW_DIR [--json OUT] [--md OUT]
      Medians, min/max and bootfarm/reference ratios per step and node count, from
      the r<rep>-<ref|bf>-<host|docker>-<n>x/ directories run-lab.sh wrote.
"""
import argparse, glob, json, os, re, signal, statistics, subprocess, sys, time

HZ = os.sysconf('SC_CLK_TCK')


# ---------------------------------------------------------------- sampler
def ns_inode_of_pid(pid):
    try:
        return os.readlink('/proc/%s/ns/net' % pid)
    except OSError:
        return None


def find_anchor(mode, anchor):
    """-> the network namespace id ('net:[inode]') of the server, or None yet."""
    if mode == 'ref-host':
        try:
            return 'net:[%d]' % os.stat('/run/netns/' + anchor).st_ino
        except OSError:
            return None
    if mode == 'bf-host':
        for p in os.listdir('/proc'):
            if not p.isdigit():
                continue
            try:
                argv = open('/proc/%s/cmdline' % p, 'rb').read().split(b'\0')
            except OSError:
                continue
            if b'serve' in argv and anchor.encode() in argv:
                return ns_inode_of_pid(p)
        return None
    if mode in ('docker-name', 'docker-mount'):
        names = [anchor]
        if mode == 'docker-mount':
            try:
                out = subprocess.run(['docker', 'ps', '--format', '{{.Names}}'], capture_output=True, text=True, timeout=10).stdout
            except Exception:
                return None
            names = [n for n in out.split() if n.endswith('-bootfarm')]
        for n in names:
            try:
                out = subprocess.run(['docker', 'inspect', '-f', '{{.State.Pid}} {{range .Mounts}}{{.Source}} {{end}}', n],
                                     capture_output=True, text=True, timeout=10).stdout.split()
            except Exception:
                continue
            if not out or out[0] in ('', '0'):
                continue
            if mode == 'docker-mount' and not any(s.startswith(anchor) for s in out[1:]):
                continue
            return ns_inode_of_pid(out[0])
        return None
    raise SystemExit('unknown mode ' + mode)


def machine_jiffies():
    f = open('/proc/stat').readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + v[4]
    return sum(v[:8]), idle


def sample(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    t_start = time.time()
    ns = None
    procs = {}          # (pid, starttime) -> {comm, ticks}
    tx_max = 0
    series = []
    m0 = machine_jiffies()
    load0 = open('/proc/loadavg').read().split()[:3]
    last_write = 0.0
    last_anchor_try = 0.0

    def write():
        m1 = machine_jiffies()
        tot = m1[0] - m0[0]
        doc = {
            'mode': a.mode, 'anchor': a.anchor, 'netns': ns, 'seconds': round(time.time() - t_start, 2),
            'cpu_s': round(sum(p['ticks'] for p in procs.values()) / HZ, 3),
            'by_comm': {}, 'tx_bytes': tx_max, 'processes': len(procs),
            'machine_busy': round(1 - (m1[1] - m0[1]) / tot, 3) if tot > 0 else None,
            'loadavg_start': load0, 'loadavg_end': open('/proc/loadavg').read().split()[:3],
            'series': series,
        }
        for p in procs.values():
            doc['by_comm'][p['comm']] = round(doc['by_comm'].get(p['comm'], 0) + p['ticks'] / HZ, 3)
        tmp = a.out + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(doc, f)
        os.replace(tmp, a.out)

    while not stop:
        now = time.time()
        if ns is None and now - last_anchor_try >= (1.0 if a.mode.startswith('docker') else 0.25):
            last_anchor_try = now
            ns = find_anchor(a.mode, a.anchor)
        if ns is not None:
            some = None
            for p in os.listdir('/proc'):
                if not p.isdigit() or ns_inode_of_pid(p) != ns:
                    continue
                try:
                    s = open('/proc/%s/stat' % p).read()
                except OSError:
                    continue
                comm = s[s.index('(') + 1:s.rindex(')')]
                f = s[s.rindex(')') + 2:].split()
                ticks, start = int(f[11]) + int(f[12]), f[19]
                e = procs.setdefault((p, start), {'comm': comm, 'ticks': 0})
                e['ticks'] = max(e['ticks'], ticks)
                some = p
            if some:
                try:
                    for line in open('/proc/%s/net/dev' % some):
                        name, _, rest = line.partition(':')
                        if name.strip() == 'eth0':
                            tx_max = max(tx_max, int(rest.split()[8]))
                except OSError:
                    pass
            series.append([round(now - t_start, 2), round(sum(p['ticks'] for p in procs.values()) / HZ, 2), tx_max])
        if now - last_write > 5:
            write()
            last_write = now
        time.sleep(0.5)
    write()


# ---------------------------------------------------------------- summary
# Points both sides have, as (label, reference key from analyze.py, bootfarm lab step).
COMMON = [
    ('DHCP (firmware)', 'w_dhcp1_ack', 'dhcp'),
    ('boot script', 'w_bootfile_rrq', 'bootloader'),
    ('kernel+initrd fetched', 's_kernel_initrd_loaded', 'initrd'),
    ('root attached (NBD)', 'w_nbd_syn', 'root attached'),
    ('END: joined / NETBOOT-E2E-OK', 'marker', 'joined'),
]
# Phases between those points (differences of the above, per node).
PHASES = [
    ('power-on -> boot script', None, 'boot script'),
    ('boot script -> kernel+initrd', 'boot script', 'kernel+initrd fetched'),
    ('kernel+initrd -> root attached', 'kernel+initrd fetched', 'root attached (NBD)'),
    ('root attached -> END', 'root attached (NBD)', 'END: joined / NETBOOT-E2E-OK'),
    ('boot script -> END (all after the firmware)', 'boot script', 'END: joined / NETBOOT-E2E-OK'),
]
REF_ONLY = [('Linux starts', 's_kernel_start'), ('DHCP ack (initramfs)', 'w_dhcp2_ack'),
            ('systemd start', 's_systemd_start'), ('phone-home POST', 'w_phonehome')]
BF_ONLY = [('kernel sent', 'kernel'), ('booted (agent report)', 'booted')]
SERVE_THRESHOLD = 64 * 1024   # tx bytes before which the server counts as starting up


def load_case(d):
    m = re.match(r'r(\d+)-(ref|bf)-(host|docker)-(\d+)x$', os.path.basename(d))
    if not m:
        return None
    rep, side, mode, n = int(m.group(1)), m.group(2), m.group(3), int(m.group(4))
    case = {'dir': d, 'rep': rep, 'side': side, 'mode': mode, 'n': n, 'nodes': [], 'failed': 0}
    try:
        case['loadavg_start'] = float(open(os.path.join(d, 'loadavg-start')).read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    if side == 'ref':
        try:
            rows = json.load(open(os.path.join(d, 'timings.json')))
        except (OSError, ValueError):
            rows = []
        for r in rows:
            if r.get('status') != 'ok':
                case['failed'] += 1
                continue
            pts = {lab: r.get(k) for lab, k, _ in COMMON}
            pts.update({lab: r.get(k) for lab, k in REF_ONLY})
            case['nodes'].append({'name': r.get('guest'), 'points': pts})
        case['failed'] += max(0, n - len(rows))
    else:
        try:
            doc = json.load(open(os.path.join(d, 'lab.json')))
        except (OSError, ValueError):
            doc = {'results': []}
        for r in doc['results']:
            if not r.get('ok'):
                case['failed'] += 1
                continue
            tl = r.get('timeline', {})
            pts = {lab: tl.get(k) for lab, _, k in COMMON}
            pts.update({lab: tl.get(k) for lab, k in BF_ONLY})
            case['nodes'].append({'name': r.get('hostname'), 'points': pts})
        case['failed'] += max(0, n - len(doc['results']))
    for nd in case['nodes']:
        p = nd['points']
        for lab, a, b in PHASES:
            if p.get(b) is not None and (a is None or p.get(a) is not None):
                p[lab] = round(p[b] - (p[a] if a else 0), 2)
    try:
        c = json.load(open(os.path.join(d, 'server-cpu.json')))
        startup = 0.0
        for t, cpu, tx in c.get('series', []):
            if tx < SERVE_THRESHOLD:
                startup = cpu
        case['cpu'] = {'total_s': c['cpu_s'], 'startup_s': startup, 'serving_s': round(c['cpu_s'] - startup, 3),
                       'tx_bytes': c['tx_bytes'], 'by_comm': c['by_comm'], 'machine_busy': c.get('machine_busy')}
        if c['tx_bytes']:
            case['cpu']['serving_s_per_gib'] = round(case['cpu']['serving_s'] / (c['tx_bytes'] / 2**30), 2)
    except (OSError, ValueError, KeyError):
        pass
    return case


def stats(v):
    v = sorted(x for x in v if x is not None)
    if not v:
        return None
    return {'median': round(statistics.median(v), 2), 'min': round(v[0], 2), 'max': round(v[-1], 2), 'n': len(v)}


def fmt(s):
    return '-' if not s else ('%.1f' % s['median'] if s['n'] == 1 else '%.1f (%.1f–%.1f)' % (s['median'], s['min'], s['max']))


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def summarize(a):
    cases = [c for c in (load_case(d) for d in sorted(glob.glob(os.path.join(a.raw, 'r*-*x')))) if c]
    groups = {}
    for c in cases:
        groups.setdefault((c['mode'], c['n']), {'ref': [], 'bf': []})[c['side']].append(c)
    out = {'raw': os.path.abspath(a.raw), 'generated': time.strftime('%Y-%m-%d %H:%M:%S'), 'groups': [], 'cases': cases}
    md = []
    for (mode, n), g in sorted(groups.items()):
        grp = {'mode': mode, 'nodes_per_run': n, 'reps': {s: len(g[s]) for s in g},
               'failed_nodes': {s: sum(c['failed'] for c in g[s]) for s in g}, 'points': {}, 'cpu': {}}
        md.append('### %s, %d node%s at once (reps: reference %d, bootfarm %d; failed nodes: reference %d, bootfarm %d)\n' % (
            'servers in Docker' if mode == 'docker' else 'servers as processes in a netns', n, 's' if n > 1 else '',
            grp['reps']['ref'], grp['reps']['bf'], grp['failed_nodes']['ref'], grp['failed_nodes']['bf']))
        md.append('| seconds since power-on | reference median (min–max) | bootfarm median (min–max) | bootfarm / reference | per-rep ratios |')
        md.append('|---|---|---|---|---|')
        labels = [l for l, _, _ in COMMON] + [l for l, _, _ in PHASES] + [l for l, _ in REF_ONLY] + [l for l, _ in BF_ONLY]
        for lab in labels:
            if lab == PHASES[0][0]:
                md.append('| *phases* | | | | |')
            if lab == REF_ONLY[0][0]:
                md.append('| *one side only* | | | | |')
            sr = stats([nd['points'].get(lab) for c in g['ref'] for nd in c['nodes']])
            sb = stats([nd['points'].get(lab) for c in g['bf'] for nd in c['nodes']])
            reps = sorted({c['rep'] for c in g['ref']} & {c['rep'] for c in g['bf']})
            per_rep = []
            for r in reps:
                mr = stats([nd['points'].get(lab) for c in g['ref'] if c['rep'] == r for nd in c['nodes']])
                mb = stats([nd['points'].get(lab) for c in g['bf'] if c['rep'] == r for nd in c['nodes']])
                if mr and mb:
                    per_rep.append(ratio(mb['median'], mr['median']))
            rt = ratio(sb and sb['median'], sr and sr['median'])
            grp['points'][lab] = {'reference': sr, 'bootfarm': sb, 'ratio': rt, 'per_rep_ratios': per_rep}
            md.append('| %s | %s | %s | %s | %s |' % (lab, fmt(sr), fmt(sb), '-' if rt is None else '%.2f' % rt,
                                                       ' '.join('%.2f' % x for x in per_rep if x is not None) or '-'))
        for side in ('ref', 'bf'):
            cs = [c['cpu'] for c in g[side] if c.get('cpu')]
            grp['cpu'][side] = {
                'total_s': stats([c['total_s'] for c in cs]), 'startup_s': stats([c['startup_s'] for c in cs]),
                'serving_s': stats([c['serving_s'] for c in cs]),
                'tx_mib': stats([c['tx_bytes'] / 2**20 for c in cs]),
                'serving_s_per_gib': stats([c.get('serving_s_per_gib') for c in cs]),
                'machine_busy': stats([c['machine_busy'] for c in cs if c.get('machine_busy') is not None]),
                'by_comm': [c['by_comm'] for c in cs],
            }
        grp['loadavg_start'] = {s: stats([c.get('loadavg_start') for c in g[s]]) for s in g}
        md.append('')
        md.append('| server, per run (medians over reps, min–max) | reference (dnsmasq + nbd-server + httpd) | bootfarm | bootfarm / reference |')
        md.append('|---|---|---|---|')
        for key, lab in [('total_s', 'CPU s, whole run incl. start'), ('startup_s', 'CPU s before serving (start-up)'),
                         ('serving_s', 'CPU s while serving'), ('tx_mib', 'MiB sent (eth0)'),
                         ('serving_s_per_gib', 'CPU s (serving) per GiB sent'), ('machine_busy', 'machine busy (0-1, both cores)')]:
            r, b = grp['cpu']['ref'][key], grp['cpu']['bf'][key]
            rt = ratio(b and b['median'], r and r['median'])
            md.append('| %s | %s | %s | %s |' % (lab, fmt(r) if key != 'machine_busy' else ('-' if not r else '%.2f' % r['median']),
                                                 fmt(b) if key != 'machine_busy' else ('-' if not b else '%.2f' % b['median']),
                                                 '-' if rt is None or key == 'machine_busy' else '%.2f' % rt))
        la = grp['loadavg_start']
        md.append('')
        md.append('Load average (1 min) at the start of each case: reference %s, bootfarm %s.\n' % (fmt(la.get('ref')), fmt(la.get('bf'))))
        out['groups'].append(grp)
    text = '\n'.join(md)
    print(text)
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(out, f, indent=1)
    if a.md:
        with open(a.md, 'w') as f:
            f.write('# Emulation-lab boot benchmark, %s\n\nRaw data: %s\n\n%s\n' % (out['generated'], out['raw'], text))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('sample')
    s.add_argument('--mode', required=True, choices=['ref-host', 'bf-host', 'docker-name', 'docker-mount'])
    s.add_argument('--anchor', required=True)
    s.add_argument('--out', required=True)
    m = sub.add_parser('summarize')
    m.add_argument('raw')
    m.add_argument('--json')
    m.add_argument('--md')
    a = ap.parse_args()
    sample(a) if a.cmd == 'sample' else summarize(a)


if __name__ == '__main__':
    main()
