package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupMemoryLimit: the limit is found where the process's cgroup is, not only at the
// mount's root (which the first version read): a systemd unit's MemoryMax= on cgroup v2, a
// limit on an ancestor, cgroup v1 (host view and container view), and none.
func TestCgroupMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		proc  string
		files map[string]string // path under the mount -> content
		want  uint64
	}{
		{"v2 systemd unit", "0::/system.slice/teosd.service\n",
			map[string]string{"system.slice/teosd.service/memory.max": "268435456\n", "system.slice/memory.max": "max\n"}, 256 * mib},
		{"v2 limit on an ancestor", "0::/user.slice/user-1000.slice/session-2.scope\n",
			map[string]string{"user.slice/user-1000.slice/session-2.scope/memory.max": "max\n", "user.slice/memory.max": "1073741824\n"}, 1024 * mib},
		{"v2 namespaced container", "0::/\n", map[string]string{"memory.max": "536870912\n"}, 512 * mib},
		{"v2 no limit", "0::/system.slice/teosd.service\n", map[string]string{"system.slice/teosd.service/memory.max": "max\n"}, 0},
		{"v1 host view", "5:memory:/system.slice/teosd.service\n1:name=systemd:/system.slice/teosd.service\n",
			map[string]string{"memory/system.slice/teosd.service/memory.limit_in_bytes": "134217728\n", "memory/memory.limit_in_bytes": "9223372036854771712\n"}, 128 * mib},
		{"v1 docker, no cgroupns", "4:cpuacct,memory:/docker/0123abcd\n0::/\n",
			map[string]string{"memory/memory.limit_in_bytes": "268435456\n"}, 256 * mib},
		{"no cgroup file entries", "", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "cgroup")
			for p, s := range tc.files {
				p = filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			proc := filepath.Join(dir, "proc-self-cgroup")
			if err := os.WriteFile(proc, []byte(tc.proc), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := cgroupMemoryLimit(proc, root); got != tc.want {
				t.Fatalf("cgroupMemoryLimit = %d, want %d", got, tc.want)
			}
			if tc.name == "v2 systemd unit" {
				// What the first version read: the mount's root, which has no memory.max.
				if got := cgroupLimit(filepath.Join(root, "memory.max")); got != 0 {
					t.Fatalf("root memory.max = %d", got)
				}
			}
		})
	}
}
