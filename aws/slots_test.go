package aws

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// stackSlots reads docker-stack.yml: for each node label a service is placed
// by (node.labels.surge.shard.1 → slot "shard.1"), the named volumes of the
// services placed there; and every named volume of the stack.
func stackSlots(t *testing.T) (slots map[string][]string, volumes []string) {
	t.Helper()
	b, err := os.ReadFile("../docker-stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	var stack struct {
		Services map[string]struct {
			Volumes []string
			Deploy  struct {
				Placement struct{ Constraints []string }
			}
		}
		Volumes map[string]any
	}
	if err := yaml.Unmarshal(b, &stack); err != nil {
		t.Fatalf("docker-stack.yml: %v", err)
	}
	label := regexp.MustCompile(`^node\.labels\.surge\.(\S+) == true$`)
	slots = map[string][]string{}
	for _, svc := range stack.Services {
		for _, c := range svc.Deploy.Placement.Constraints {
			m := label.FindStringSubmatch(c)
			if m == nil {
				continue
			}
			if _, ok := slots[m[1]]; !ok {
				slots[m[1]] = nil
			}
			for _, v := range svc.Volumes {
				name, _, _ := strings.Cut(v, ":")
				slots[m[1]] = append(slots[m[1]], name)
			}
		}
	}
	for v := range stack.Volumes {
		volumes = append(volumes, v)
	}
	return slots, volumes
}

// slot is one stateful slot of the template, found from its launch template,
// whose user data's Sub variables name the slot, its volume and the stack
// volume it holds.
type slot struct {
	name, template, group, subnet, volume, dockerVolume, userData string
	data                                                          map[string]any
}

func findSlots(t *testing.T, tp template) map[string]slot {
	t.Helper()
	groups := tp.resourcesOf("AWS::AutoScaling::AutoScalingGroup")
	out := map[string]slot{}
	for name, p := range tp.resourcesOf("AWS::EC2::LaunchTemplate") {
		data := p["LaunchTemplateData"].(map[string]any)
		text, vars := userData(t, name, data)
		if vars["Slot"] == nil {
			continue
		}
		s := slot{name: fmt.Sprint(vars["Slot"]), template: name, userData: text, data: data,
			dockerVolume: fmt.Sprint(vars["DockerVolume"])}
		if ref, ok := vars["Volume"].(map[string]any); ok {
			s.volume = fmt.Sprint(ref["Ref"])
		}
		for g, gp := range groups {
			lt := gp["LaunchTemplate"].(map[string]any)["LaunchTemplateId"]
			if fmt.Sprint(lt) != fmt.Sprint(map[string]any{"Ref": name}) {
				continue
			}
			if s.group != "" {
				t.Errorf("slot %s: launch template %s used by %s and %s", s.name, name, s.group, g)
			}
			s.group = g
			subnets, _ := gp["VPCZoneIdentifier"].([]any)
			if len(subnets) != 1 {
				t.Errorf("slot %s: group %s spans %v: its volume is in one availability zone", s.name, g, subnets)
				continue
			}
			ref, _ := subnets[0].(map[string]any)
			s.subnet = fmt.Sprint(ref["Ref"])
		}
		if _, dup := out[s.name]; dup {
			t.Errorf("slot %s: two launch templates", s.name)
		}
		out[s.name] = s
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// labelScript is the managers' surge-label-slots, as the instance gets it.
func labelScript(t *testing.T, tp template) string {
	t.Helper()
	lt := tp.resourcesOf("AWS::EC2::LaunchTemplate")["ManagerLaunchTemplate"]
	text, _ := userData(t, "ManagerLaunchTemplate", lt["LaunchTemplateData"].(map[string]any))
	_, after, ok := strings.Cut(rendered(text), "cat >/usr/local/sbin/surge-label-slots <<'EOF'\n")
	script, _, ok2 := strings.Cut(after, "\nEOF\n")
	if !ok || !ok2 {
		t.Fatal("manager user data: no surge-label-slots here-document")
	}
	return script
}

// Every slot's node is pinned to the subnet of its volume, which is kept
// (snapshotted) when deleted or replaced, encrypted, and tagged with the stack
// and slot; the slots are exactly the node labels docker-stack.yml places by,
// and each holds the named volume of the services placed there.
func TestSlotsKeepTheirData(t *testing.T) {
	tp := load(t)
	slots := findSlots(t, tp)
	want, stackVolumes := stackSlots(t)
	if got, w := sortedKeys(slots), sortedKeys(want); !slices.Equal(got, w) {
		t.Fatalf("slots %v, want one for each placement label of docker-stack.yml: %v", got, w)
	}
	listed := regexp.MustCompile(`(?m)^SLOTS="(.*)"$`).FindStringSubmatch(labelScript(t, tp))
	var names []string
	if listed != nil {
		names = strings.Fields(listed[1])
		sort.Strings(names)
	}
	if !slices.Equal(names, sortedKeys(want)) {
		t.Errorf("surge-label-slots: SLOTS %v, want %v", listed, sortedKeys(want))
	}
	held := map[string]bool{}
	owner := map[string]string{}
	var first slot
	for _, name := range sortedKeys(slots) {
		s := slots[name]
		if vols := want[name]; len(vols) != 1 || s.dockerVolume != "surge_"+vols[0] {
			t.Errorf("slot %s holds %s; docker-stack.yml's services there use %v (the stack is deployed as surge)", name, s.dockerVolume, vols)
		} else {
			held[vols[0]] = true
		}
		if prev, dup := owner[s.volume]; dup {
			t.Errorf("slots %s and %s share volume %s", prev, name, s.volume)
		}
		owner[s.volume] = name
		if r, _ := tp.Resources[s.subnet].(map[string]any); r == nil || r["Type"] != "AWS::EC2::Subnet" {
			t.Errorf("slot %s: group %s is not pinned to one of the template's subnets (%q)", name, s.group, s.subnet)
		}
		vol, _ := tp.Resources[s.volume].(map[string]any)
		if vol == nil || vol["Type"] != "AWS::EC2::Volume" {
			t.Errorf("slot %s: user data's volume %q is not an AWS::EC2::Volume", name, s.volume)
			continue
		}
		for _, policy := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
			if vol[policy] != "Snapshot" {
				t.Errorf("slot %s: volume %s %s %v, want Snapshot", name, s.volume, policy, vol[policy])
			}
		}
		props := vol["Properties"].(map[string]any)
		if fmt.Sprint(props["Encrypted"]) != "true" || props["VolumeType"] != "gp3" {
			t.Errorf("slot %s: volume %s encrypted %v, type %v; want encrypted gp3", name, s.volume, props["Encrypted"], props["VolumeType"])
		}
		if az, w := fmt.Sprint(props["AvailabilityZone"]), fmt.Sprint(map[string]any{"Fn::GetAtt": []any{s.subnet, "AvailabilityZone"}}); az != w {
			t.Errorf("slot %s: volume %s in %s, but its group is pinned to %s", name, s.volume, az, s.subnet)
		}
		tag := fmt.Sprint(map[string]any{"Key": "surge:slot", "Value": map[string]any{"Fn::Sub": "${AWS::StackName}/" + name}})
		if tags := fmt.Sprint(props["Tags"]); !strings.Contains(tags, tag) {
			t.Errorf("slot %s: volume tags %s lack %s", name, tags, tag)
		}
		specs, _ := s.data["TagSpecifications"].([]any)
		if !strings.Contains(fmt.Sprint(specs), tag) {
			t.Errorf("slot %s: instance tags %v lack %s", name, specs, tag)
		}
		group := tp.resourcesOf("AWS::AutoScaling::AutoScalingGroup")[s.group]
		if mp, _ := group["InstanceMaintenancePolicy"].(map[string]any); fmt.Sprint(mp["MinHealthyPercentage"]) != "0" {
			t.Errorf("slot %s: group %s may launch a replacement before the old node lets go of the volume: %v", name, s.group, mp)
		}
		if first.name == "" {
			first = s
		} else if s.userData != first.userData {
			t.Errorf("slot %s's user data differs from slot %s's: write the slot script once, vary only its variables", name, first.name)
		}
	}
	for _, v := range stackVolumes {
		if !held[v] {
			t.Errorf("docker-stack.yml volume %s is on no slot: it would die with its node", v)
		}
	}
}

// A slot's user data attaches the volume it names, never forces a detach,
// mounts it where Docker keeps the slot's stack volume before Docker starts,
// claims the slot only then, and runs mkfs only inside format_if_blank.
func TestSlotUserData(t *testing.T) {
	tp := load(t)
	for name, s := range findSlots(t, tp) {
		text := s.userData
		for _, bad := range []string{"detach-volume", "--force"} {
			if strings.Contains(text, bad) {
				t.Errorf("slot %s: user data contains %q", name, bad)
			}
		}
		// In the order the data needs: nothing starts Docker before the mount.
		steps := []string{
			"VOL=${Volume}\n",
			`aws ec2 attach-volume --volume-id "$VOL" --instance-id "$ID"`,
			`format_if_blank "$dev"` + "\n",
			"data=/var/lib/docker/volumes/${DockerVolume}/_data\n",
			`mount "$data"` + "\n",
			`echo '{"labels": ["surge.slot=${Slot}"]}' >/etc/docker/daemon.json`,
			"docker.io\n",
			"docker swarm join",
		}
		at := 0
		for _, step := range steps {
			i := strings.Index(text[at:], step)
			if i < 0 {
				t.Errorf("slot %s: user data lacks %q after %q", name, step, text[:at][max(0, at-60):])
				break
			}
			at += i + len(step)
		}
		if strings.Count(text, "docker.io") != 1 || strings.Count(text, "RequiresMountsFor=") != 1 {
			t.Errorf("slot %s: Docker must be installed once, after the mount, and require it", name)
		}
	}
	fn := regexp.MustCompile(`(?s)\nformat_if_blank\(\) \{\n.*?\n\}\n`)
	for name, p := range tp.resourcesOf("AWS::EC2::LaunchTemplate") {
		text, _ := userData(t, name, p["LaunchTemplateData"].(map[string]any))
		for _, line := range strings.Split(fn.ReplaceAllString(text, "\n"), "\n") {
			if strings.Contains(line, "mkfs") && !strings.HasPrefix(strings.TrimSpace(line), "#") {
				t.Errorf("%s: mkfs outside format_if_blank: %s", name, line)
			}
		}
	}
}

// stub writes an executable bash script.
func stub(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/bash\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// format_if_blank, run against a stand-in blkid: mkfs only when blkid found
// no signature (exit 2), never when it found one or failed.
func TestFormatOnlyBlank(t *testing.T) {
	tp := load(t)
	slots := findSlots(t, tp)
	if len(slots) == 0 {
		t.Fatal("no slots")
	}
	s := slots[sortedKeys(slots)[0]]
	fn := regexp.MustCompile(`(?s)\nformat_if_blank\(\) \{\n.*?\n\}\n`).FindString(rendered(s.userData))
	if fn == "" {
		t.Fatal("slot user data: no format_if_blank function")
	}
	for _, c := range []struct {
		blkid       int
		formats, ok bool
	}{{0, false, true}, {2, true, true}, {4, false, false}, {8, false, false}} {
		dir := t.TempDir()
		stub(t, dir, "blkid", fmt.Sprintf("exit %d\n", c.blkid))
		stub(t, dir, "mkfs.ext4", `echo "$@" >"$(dirname "$0")/formatted"`+"\n")
		cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+fn+`format_if_blank /dev/xvdf`)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		_, statErr := os.Stat(filepath.Join(dir, "formatted"))
		if formatted := statErr == nil; formatted != c.formats {
			t.Errorf("blkid exit %d: formatted %v, want %v\n%s", c.blkid, formatted, c.formats, out)
		}
		if (err == nil) != c.ok {
			t.Errorf("blkid exit %d: error %v, want success %v\n%s", c.blkid, err, c.ok, out)
		}
	}
}

// dockerStub answers surge-label-slots's docker commands from a node table
// (id state claim labels, "-" for none) and records every change.
const dockerStub = `dir=$(dirname "$0")
case "$1 $2" in
"node ls") awk '{print $1}' "$dir/nodes" ;;
"node inspect")
  format=$4
  shift 4
  for id in "$@"; do
    read -r _ state claim labels < <(grep "^$id " "$dir/nodes")
    case $format in
    *Engine.Labels*) echo "$id $state ${claim#-}" ;;
    *Spec.Labels*)
      key=$(sed 's/.*"\(.*\)".*/\1/' <<<"$format")
      case ",$labels," in *",$key,"*) echo true ;; *) echo ;; esac ;;
    esac
  done ;;
*) echo "$*" >>"$dir/changes" ;;
esac
`

// surge-label-slots gives each slot's label to the ready node that claims the
// slot, takes it from any other, removes the down node it replaced, and says
// (exit 3) while a slot has no ready node.
func TestLabelsFollowTheVolume(t *testing.T) {
	script := labelScript(t, load(t))
	for _, c := range []struct {
		name, nodes string
		changes     []string
		exit        int
	}{{
		name: "a shard 1 node replaced, a stale label, shard 2 not back yet",
		nodes: "new1 ready shard.1 -\nold1 down shard.1 surge.shard.1\npg ready postgres surge.postgres\n" +
			"w1 ready - surge.postgres\nold2 down shard.2 surge.shard.2\nm1 ready - -\n",
		changes: []string{"node update --label-add surge.shard.1=true new1", "node rm old1", "node update --label-rm surge.postgres w1"},
		exit:    3,
	}, {
		name:    "every slot held",
		nodes:   "s1 ready shard.1 surge.shard.1\ns2 ready shard.2 -\ns3 ready shard.3 surge.shard.3\npg ready postgres surge.postgres\nm1 ready - -\n",
		changes: []string{"node update --label-add surge.shard.2=true s2"},
		exit:    0,
	}} {
		dir := t.TempDir()
		stub(t, dir, "docker", dockerStub)
		os.WriteFile(filepath.Join(dir, "nodes"), []byte(c.nodes), 0o644)
		path := filepath.Join(dir, "surge-label-slots")
		os.WriteFile(path, []byte(script), 0o755)
		cmd := exec.Command("bash", path)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		code := 0
		if e, ok := err.(*exec.ExitError); ok {
			code = e.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "changes"))
		got := strings.Split(strings.TrimSpace(string(b)), "\n")
		if string(b) == "" {
			got = nil
		}
		sort.Strings(got)
		sort.Strings(c.changes)
		if !slices.Equal(got, c.changes) || code != c.exit {
			t.Errorf("%s: changes %q, exit %d; want %q, exit %d\n%s", c.name, got, code, c.changes, c.exit, out)
		}
	}
}

// A slot's role may attach its own volume, to an instance of its own slot;
// no role may attach any other volume, or detach one.
func TestSlotVolumeAccess(t *testing.T) {
	tp := load(t)
	arn := "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:"
	roles := map[string]slot{}
	for name, s := range findSlots(t, tp) {
		profile := fmt.Sprint(s.data["IamInstanceProfile"].(map[string]any)["Arn"].(map[string]any)["Fn::GetAtt"].([]any)[0])
		role := fmt.Sprint(tp.resourcesOf("AWS::IAM::InstanceProfile")[profile]["Roles"].([]any)[0].(map[string]any)["Ref"])
		if prev, dup := roles[role]; dup {
			t.Errorf("slots %s and %s share role %s: each may attach only its own volume", prev.name, name, role)
		}
		roles[role] = s
	}
	attach := map[string]int{}
	for where, st := range statements(tp) {
		actions := fmt.Sprint(st["Action"])
		if strings.Contains(actions, "DetachVolume") {
			t.Errorf("%s: %s: a volume is released only by its instance's termination", where, actions)
		}
		if !strings.Contains(actions, "AttachVolume") {
			continue
		}
		role, _, _ := strings.Cut(where, ".")
		s, ok := roles[role]
		if !ok {
			t.Errorf("%s: %s for a role that is no slot's", where, actions)
			continue
		}
		if actions != "ec2:AttachVolume" {
			t.Errorf("%s: %s: attach statements grant nothing else", where, actions)
		}
		res := fmt.Sprint(st["Resource"])
		switch res {
		case fmt.Sprint(map[string]any{"Fn::Sub": arn + "volume/${" + s.volume + "}"}):
			if st["Condition"] != nil {
				t.Errorf("%s: unexpected condition on the volume", where)
			}
			attach[role] |= 1
		case fmt.Sprint(map[string]any{"Fn::Sub": arn + "instance/*"}):
			cond := fmt.Sprint(st["Condition"])
			want := fmt.Sprint(map[string]any{"StringEquals": map[string]any{"ec2:ResourceTag/surge:slot": map[string]any{"Fn::Sub": "${AWS::StackName}/" + s.name}}})
			if cond != want {
				t.Errorf("%s: instances %s, want only those tagged as slot %s: %s", where, cond, s.name, want)
			}
			attach[role] |= 2
		default:
			t.Errorf("%s: slot %s may attach %s; only its volume %s, to its own instances", where, s.name, res, s.volume)
		}
	}
	for role, s := range roles {
		if attach[role] != 3 {
			t.Errorf("%s: slot %s cannot attach its volume %s to its instance", role, s.name, s.volume)
		}
	}
}
