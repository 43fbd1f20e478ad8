// Package aws holds surge's CloudFormation template (surge.yaml) and its
// offline structure test: parameters, security-group rules, references, the
// auto-scaling groups, the user data (parsed by bash, no secret in it), the
// outputs, and the stateful slots: each shard's and Postgres's node pinned to
// the subnet of an EBS volume that outlives it, and the label that follows
// the volume (the slot scripts run here against stand-ins for blkid, mkfs and
// docker).
package aws

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// decode turns a YAML node into plain values; a short-form intrinsic
// function (!Ref x, !Sub s, !GetAtt a.b, …) becomes its long form
// {"Ref": x}, {"Fn::Sub": s}, {"Fn::GetAtt": [a, b]}.
func decode(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return decode(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			val, err := decode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			val, err := decode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		if err := n.Decode(&v); err != nil && !strings.HasPrefix(n.Tag, "!") {
			return nil, err
		}
		if strings.HasPrefix(n.Tag, "!") {
			v = n.Value
		}
	case yaml.AliasNode:
		return decode(n.Alias)
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		name := strings.TrimPrefix(tag, "!")
		if name == "GetAtt" {
			if s, ok := v.(string); ok {
				a, b, _ := strings.Cut(s, ".")
				v = []any{a, b}
			}
		}
		if name != "Ref" && name != "Condition" {
			name = "Fn::" + name
		}
		return map[string]any{name: v}, nil
	}
	return v, nil
}

type template struct {
	Parameters, Conditions, Resources, Outputs map[string]any
}

func load(t *testing.T) template {
	t.Helper()
	b, err := os.ReadFile("surge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("surge.yaml: %v", err)
	}
	v, err := decode(&root)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["AWSTemplateFormatVersion"] != "2010-09-09" {
		t.Errorf("AWSTemplateFormatVersion %v", m["AWSTemplateFormatVersion"])
	}
	get := func(k string) map[string]any { x, _ := m[k].(map[string]any); return x }
	return template{get("Parameters"), get("Conditions"), get("Resources"), get("Outputs")}
}

func (tp template) resourcesOf(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, r := range tp.Resources {
		r := r.(map[string]any)
		if r["Type"] == typ {
			props, _ := r["Properties"].(map[string]any)
			out[name] = props
		}
	}
	return out
}

func TestParameters(t *testing.T) {
	tp := load(t)
	want := map[string]string{
		"ManagerCount": "Number", "WorkerCount": "Number", "InstanceType": "String",
		"ImageId": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "KeyName": "String", "SSHCidr": "String",
		"VpcCidr": "String", "CertificateArn": "String", "SurgeImage": "String", "SurgeTag": "String",
		"RepoUrl": "String", "RepoRef": "String", "ShardVolumeSize": "Number", "PostgresVolumeSize": "Number",
		"Shard1Snapshot": "String", "Shard2Snapshot": "String", "Shard3Snapshot": "String", "PostgresSnapshot": "String",
	}
	var got []string
	for name, p := range tp.Parameters {
		got = append(got, name)
		if typ := p.(map[string]any)["Type"]; typ != want[name] {
			t.Errorf("parameter %s: type %v, want %s", name, typ, want[name])
		}
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(got)
	sort.Strings(names)
	if !slices.Equal(got, names) {
		t.Errorf("parameters %v, want %v", got, names)
	}
	ssh := tp.Parameters["SSHCidr"].(map[string]any)
	pattern, _ := ssh["AllowedPattern"].(string)
	re, err := regexp.Compile(pattern)
	if err != nil || pattern == "" {
		t.Fatalf("SSHCidr: AllowedPattern %q: %v", pattern, err)
	}
	if def := fmt.Sprint(ssh["Default"]); def == "0.0.0.0/0" || !re.MatchString(def) {
		t.Errorf("SSHCidr default %q: must be a CIDR, and not the whole world", def)
	}
	for _, bad := range []string{"", "any", "10.0.0.0", "10.0.0.0/33"} {
		if re.MatchString(bad) {
			t.Errorf("SSHCidr accepts %q", bad)
		}
	}
}

// rule is one security-group rule, inline or standalone.
type rule struct {
	where                      string
	egress                     bool
	proto                      string
	from, to                   int
	cidr, cidr6, group, source any
}

func rules(t *testing.T, tp template) []rule {
	var out []rule
	num := func(v any) int {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil {
			t.Errorf("port %v: %v", v, err)
		}
		return n
	}
	add := func(where string, egress bool, r map[string]any, group any) {
		src := r["SourceSecurityGroupId"]
		if egress {
			src = r["DestinationSecurityGroupId"]
		}
		out = append(out, rule{where: where, egress: egress, proto: fmt.Sprint(r["IpProtocol"]), from: num(r["FromPort"]), to: num(r["ToPort"]),
			cidr: r["CidrIp"], cidr6: r["CidrIpv6"], group: group, source: src})
	}
	for name, p := range tp.resourcesOf("AWS::EC2::SecurityGroup") {
		for _, dir := range []string{"SecurityGroupIngress", "SecurityGroupEgress"} {
			list, _ := p[dir].([]any)
			for i, r := range list {
				add(fmt.Sprintf("%s.%s[%d]", name, dir, i), dir == "SecurityGroupEgress", r.(map[string]any), map[string]any{"Ref": name})
			}
		}
	}
	for _, typ := range []string{"AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"} {
		for name, p := range tp.resourcesOf(typ) {
			add(name, typ == "AWS::EC2::SecurityGroupEgress", p, p["GroupId"])
		}
	}
	return out
}

func TestSecurityGroupRules(t *testing.T) {
	tp := load(t)
	rs := rules(t, tp)
	if len(rs) == 0 {
		t.Fatal("no security-group rules")
	}
	node := map[string]any{"Ref": "NodeSecurityGroup"}
	world := map[string]bool{}
	for _, r := range rs {
		if r.cidr == "0.0.0.0/0" || r.cidr6 == "::/0" {
			if r.proto != "tcp" || r.from != r.to || (r.from != 80 && r.from != 443) {
				t.Errorf("%s: %s %d-%d open to the world; only 80 and 443 may be", r.where, r.proto, r.from, r.to)
			}
			if !r.egress {
				world[fmt.Sprint(r.from)] = true
			}
		}
		if r.proto == "-1" && r.source == nil {
			t.Errorf("%s: all protocols to %v", r.where, r.cidr)
		}
		if r.from <= 22 && 22 <= r.to && r.proto == "tcp" && !r.egress {
			if fmt.Sprint(r.cidr) != fmt.Sprint(map[string]any{"Ref": "SSHCidr"}) {
				t.Errorf("%s: SSH from %v, want only from the SSHCidr parameter", r.where, r.cidr)
			}
		}
	}
	if !world["80"] || !world["443"] {
		t.Errorf("80 and 443 must be open to the world: %v", world)
	}
	// The swarm's ports, both ways, only within the nodes' group.
	for _, port := range []struct {
		proto string
		n     int
	}{{"tcp", 2377}, {"tcp", 7946}, {"udp", 7946}, {"udp", 4789}} {
		for _, egress := range []bool{false, true} {
			found := false
			for _, r := range rs {
				if r.proto != port.proto || r.from > port.n || r.to < port.n || r.egress != egress {
					continue
				}
				if r.cidr != nil || r.cidr6 != nil {
					t.Errorf("%s: swarm port %s/%d open to %v%v", r.where, port.proto, port.n, r.cidr, r.cidr6)
				}
				if fmt.Sprint(r.group) == fmt.Sprint(node) && fmt.Sprint(r.source) == fmt.Sprint(node) {
					found = true
				}
			}
			if !found {
				t.Errorf("swarm port %s/%d (egress %v): no rule within NodeSecurityGroup", port.proto, port.n, egress)
			}
		}
	}
}

var pseudo = map[string]bool{"AWS::AccountId": true, "AWS::NoValue": true, "AWS::Partition": true, "AWS::Region": true,
	"AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true, "AWS::NotificationARNs": true}

var subVar = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

// Every Ref, GetAtt, Sub variable, condition and DependsOn resolves.
func TestReferencesResolve(t *testing.T) {
	tp := load(t)
	var walk func(path string, v any)
	check := func(path, name string) {
		if _, ok := tp.Parameters[name]; ok {
			return
		}
		if _, ok := tp.Resources[name]; ok || pseudo[name] {
			return
		}
		t.Errorf("%s: %q is neither a parameter, a resource nor a pseudo parameter", path, name)
	}
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				switch k {
				case "Ref":
					check(path, fmt.Sprint(x))
				case "Fn::GetAtt":
					parts, _ := x.([]any)
					if len(parts) != 2 {
						t.Errorf("%s: GetAtt %v", path, x)
					} else if _, ok := tp.Resources[fmt.Sprint(parts[0])]; !ok {
						t.Errorf("%s: GetAtt of unknown resource %v", path, parts[0])
					}
				case "Fn::Sub":
					text, vars := x, map[string]any{}
					if list, ok := x.([]any); ok && len(list) == 2 {
						text, vars = list[0], list[1].(map[string]any)
					}
					for _, m := range subVar.FindAllStringSubmatch(fmt.Sprint(text), -1) {
						name, _, _ := strings.Cut(m[1], ".")
						if _, ok := vars[name]; !ok {
							if strings.Contains(m[1], ".") {
								if _, ok := tp.Resources[name]; !ok {
									t.Errorf("%s: Sub ${%s}: no resource %s", path, m[1], name)
								}
							} else {
								check(path+" (Sub)", name)
							}
						}
					}
				case "Fn::If":
					list, _ := x.([]any)
					if len(list) != 3 {
						t.Errorf("%s: If %v", path, x)
					} else if _, ok := tp.Conditions[fmt.Sprint(list[0])]; !ok {
						t.Errorf("%s: If on unknown condition %v", path, list[0])
					}
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	for name, r := range tp.Resources {
		r := r.(map[string]any)
		if c, ok := r["Condition"]; ok {
			if _, ok := tp.Conditions[fmt.Sprint(c)]; !ok {
				t.Errorf("%s: unknown condition %v", name, c)
			}
		}
		deps := r["DependsOn"]
		if s, ok := deps.(string); ok {
			deps = []any{s}
		}
		list, _ := deps.([]any)
		for _, d := range list {
			if _, ok := tp.Resources[fmt.Sprint(d)]; !ok {
				t.Errorf("%s: DependsOn unknown %v", name, d)
			}
		}
		walk("Resources."+name, r)
	}
	walk("Outputs", tp.Outputs)
	walk("Conditions", tp.Conditions)
}

func TestGroupsBalancerOutputs(t *testing.T) {
	tp := load(t)
	asgs := tp.resourcesOf("AWS::AutoScaling::AutoScalingGroup")
	sizes := map[string]string{}
	for name, p := range asgs {
		lt := p["LaunchTemplate"].(map[string]any)
		ref := fmt.Sprint(lt["LaunchTemplateId"].(map[string]any)["Ref"])
		if tp.Resources[ref].(map[string]any)["Type"] != "AWS::EC2::LaunchTemplate" {
			t.Errorf("%s: launch template %s", name, ref)
		}
		if count, ok := p["DesiredCapacity"].(map[string]any); ok {
			sizes[fmt.Sprint(count["Ref"])] = name
		} else if n := fmt.Sprint(p["DesiredCapacity"], p["MinSize"], p["MaxSize"]); n != "111" {
			t.Errorf("%s: desired, min and max %s: a fixed group is a slot of one node", name, n)
		}
		if tgs, _ := p["TargetGroupARNs"].([]any); len(tgs) != 1 {
			t.Errorf("%s: target groups %v: HAProxy runs on every node", name, tgs)
		}
	}
	if len(sizes) != 2 || sizes["ManagerCount"] == "" || sizes["WorkerCount"] == "" {
		t.Errorf("auto-scaling groups %v: want one sized by ManagerCount and one by WorkerCount", sizes)
	}
	lbs := tp.resourcesOf("AWS::ElasticLoadBalancingV2::LoadBalancer")
	if len(lbs) != 1 {
		t.Fatalf("load balancers %v", lbs)
	}
	var lbName string
	for n, p := range lbs {
		lbName = n
		if p["Scheme"] != "internet-facing" {
			t.Errorf("%s: scheme %v", n, p["Scheme"])
		}
	}
	ports := map[string]bool{}
	for _, p := range tp.resourcesOf("AWS::ElasticLoadBalancingV2::Listener") {
		ports[fmt.Sprint(p["Port"])] = true
	}
	if !ports["80"] || !ports["443"] || len(ports) != 2 {
		t.Errorf("listeners on %v, want 80 and 443", ports)
	}
	found := false
	for name, o := range tp.Outputs {
		v := o.(map[string]any)["Value"]
		if fmt.Sprint(v) == fmt.Sprint(map[string]any{"Fn::GetAtt": []any{lbName, "DNSName"}}) {
			found = true
			t.Logf("output %s gives the load balancer's address", name)
		}
	}
	if !found {
		t.Errorf("no output gives %s.DNSName", lbName)
	}
}

// The user data: no secret, the join through SSM, the Docker API never on
// TCP, and bash parses it once CloudFormation has substituted it.
func TestUserData(t *testing.T) {
	tp := load(t)
	lts := tp.resourcesOf("AWS::EC2::LaunchTemplate")
	if want, _ := stackSlots(t); len(lts) != 2+len(want) {
		t.Fatalf("launch templates %v: want a manager's, a worker's and one a slot", lts)
	}
	for name, p := range lts {
		data := p["LaunchTemplateData"].(map[string]any)
		if data["MetadataOptions"].(map[string]any)["HttpTokens"] != "required" {
			t.Errorf("%s: IMDSv2 not required", name)
		}
		if sgs := fmt.Sprint(data["SecurityGroupIds"]); sgs != fmt.Sprint([]any{map[string]any{"Ref": "NodeSecurityGroup"}}) {
			t.Errorf("%s: security groups %s, want only NodeSecurityGroup", name, sgs)
		}
		sub, _ := userData(t, name, data)
		for _, bad := range []string{"SWMTKN", "tcp://", "2375", "2376", "docker secret create surge_postgres_password surge"} {
			if strings.Contains(sub, bad) {
				t.Errorf("%s: user data contains %q", name, bad)
			}
		}
		wants := []string{"aws ssm get-parameter --with-decryption", "docker swarm join --token \"$(get "}
		switch {
		case strings.Contains(name, "Manager"):
			wants = append(wants, "docker swarm init", "put worker-token", "--type SecureString", "docker stack deploy",
				"SURGE_COOKIE_SECURE=${CookieSecure}", "systemctl enable --now surge-label-slots.timer")
		case name != "WorkerLaunchTemplate":
			wants = append(wants, "aws ec2 attach-volume --volume-id \"$VOL\"", "format_if_blank \"$dev\"")
		}
		for _, w := range wants {
			if !strings.Contains(sub, w) {
				t.Errorf("%s: user data lacks %q", name, w)
			}
		}
		script := rendered(sub)
		path := filepath.Join(t.TempDir(), name+".sh")
		os.WriteFile(path, []byte(script), 0o644)
		if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", name, err, out)
		}
	}
	// Workers and slots may read their token, and nothing else; managers may write.
	for name, st := range statements(tp) {
		actions := fmt.Sprint(st["Action"])
		if strings.Contains(actions, "*") {
			t.Errorf("%s: wildcard action %s", name, actions)
		}
		if !strings.HasPrefix(name, "ManagerRole") && strings.Contains(actions, "PutParameter") {
			t.Errorf("%s may write parameters: %s", name, actions)
		}
	}
}

// statements lists every IAM statement of the template's roles and managed
// policies, by "Resource.PolicyName[i]".
func statements(tp template) map[string]map[string]any {
	out := map[string]map[string]any{}
	add := func(where string, doc any) {
		for i, st := range doc.(map[string]any)["Statement"].([]any) {
			out[fmt.Sprintf("%s[%d]", where, i)] = st.(map[string]any)
		}
	}
	for name, p := range tp.resourcesOf("AWS::IAM::Role") {
		pols, _ := p["Policies"].([]any)
		for _, pol := range pols {
			pol := pol.(map[string]any)
			add(name+"."+fmt.Sprint(pol["PolicyName"]), pol["PolicyDocument"])
		}
	}
	for name, p := range tp.resourcesOf("AWS::IAM::ManagedPolicy") {
		add(name, p["PolicyDocument"])
	}
	return out
}

// userData returns a launch template's user data, the text given to Fn::Sub,
// and its variables (nil when there are none).
func userData(t *testing.T, name string, data map[string]any) (string, map[string]any) {
	t.Helper()
	subArg := data["UserData"].(map[string]any)["Fn::Base64"].(map[string]any)["Fn::Sub"]
	var vars map[string]any
	if list, ok := subArg.([]any); ok && len(list) == 2 {
		subArg, vars = list[0], list[1].(map[string]any) // the variables are checked by TestReferencesResolve
	}
	sub, ok := subArg.(string)
	if !ok {
		t.Fatalf("%s: user data is not Base64(Sub(text)) or Base64(Sub([text, variables]))", name)
	}
	return sub, vars
}

// rendered is what CloudFormation hands the instance: ${X} substituted (here
// by a placeholder), ${!X} → ${X}.
func rendered(sub string) string {
	return strings.ReplaceAll(subVar.ReplaceAllString(sub, "PLACEHOLDER"), "${!", "${")
}
