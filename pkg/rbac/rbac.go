// Package rbac holds the roles hw's own components and joining agents need
// beyond Kubernetes' defaults, and applies them on every server start.
package rbac

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"
)

// FlannelUser is the identity of every node's flannel (the CN of its client
// certificate). Flannel reads all Nodes to route to their pod subnets, which
// a kubelet's own identity may not do.
const FlannelUser = "system:hw-flannel"

// NetworkPolicyRole is what every node's NetworkPolicy controller may read.
const NetworkPolicyRole = "hw:network-policy"

// AgentGroup is the group every hw join token authenticates with.
const AgentGroup = "system:bootstrappers:hw:agents"

// ServerGroup is the group only the server token authenticates with (besides
// AgentGroup): it may read the files every server shares, which a joining
// server needs. Join tokens from `hw token create` are agents' only.
const ServerGroup = "system:bootstrappers:hw:servers"

// ServerBootstrap is the kube-system Secret holding the servers' shared
// files, sealed with a key derived from the server token (pkg/join).
const ServerBootstrap = "hw-server-bootstrap"

// What joining agents read before they have an identity: the cluster CA
// (kube-public/cluster-info, readable without credentials, as kubeadm does)
// and the cluster's settings (kube-system/hw-agent-config).
const (
	ClusterInfo = "cluster-info"
	AgentConfig = "hw-agent-config"
)

// DNSConfigMaps are the cluster DNS's configuration (see pkg/component/dns).
var DNSConfigMaps = []string{"coredns", "coredns-custom"}

const fieldManager = "hw"

var managedBy = map[string]string{"app.kubernetes.io/managed-by": "hw"}

func clusterRole(name string, rules ...*rbacac.PolicyRuleApplyConfiguration) *rbacac.ClusterRoleApplyConfiguration {
	return rbacac.ClusterRole(name).WithLabels(managedBy).WithRules(rules...)
}

func clusterRoleBinding(name, role string, subjects ...*rbacac.SubjectApplyConfiguration) *rbacac.ClusterRoleBindingApplyConfiguration {
	return rbacac.ClusterRoleBinding(name).WithLabels(managedBy).
		WithRoleRef(rbacac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("ClusterRole").WithName(role)).
		WithSubjects(subjects...)
}

func user(name string) *rbacac.SubjectApplyConfiguration {
	return rbacac.Subject().WithAPIGroup("rbac.authorization.k8s.io").WithKind("User").WithName(name)
}

func group(name string) *rbacac.SubjectApplyConfiguration {
	return rbacac.Subject().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Group").WithName(name)
}

// readConfigMap is a Role and its binding that let subjects get one ConfigMap.
func readConfigMap(namespace, configMap string, subjects ...*rbacac.SubjectApplyConfiguration) (*rbacac.RoleApplyConfiguration, *rbacac.RoleBindingApplyConfiguration) {
	return configMapsRole("hw:read-"+configMap, namespace, []string{configMap}, []string{"get"}, subjects...)
}

// configMapsRole is a Role and its binding that give subjects verbs on some ConfigMaps.
func configMapsRole(name, namespace string, configMaps, verbs []string, subjects ...*rbacac.SubjectApplyConfiguration) (*rbacac.RoleApplyConfiguration, *rbacac.RoleBindingApplyConfiguration) {
	role := rbacac.Role(name, namespace).WithLabels(managedBy).WithRules(
		rbacac.PolicyRule().WithAPIGroups("").WithResources("configmaps").WithResourceNames(configMaps...).WithVerbs(verbs...))
	binding := rbacac.RoleBinding(name, namespace).WithLabels(managedBy).
		WithRoleRef(rbacac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName(name)).
		WithSubjects(subjects...)
	return role, binding
}

// Ensure applies every role and binding hw needs.
func Ensure(ctx context.Context, client kubernetes.Interface) error {
	api := client.RbacV1()
	opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
	roles := []*rbacac.ClusterRoleApplyConfiguration{
		clusterRole(FlannelUser,
			rbacac.PolicyRule().WithAPIGroups("").WithResources("nodes").WithVerbs("get", "list", "watch", "patch"),
			rbacac.PolicyRule().WithAPIGroups("").WithResources("nodes/status").WithVerbs("patch")),
		// Each node's NetworkPolicy controller (pkg/component/netpol) runs
		// as flannel: it filters its pods by the labels of every pod and
		// namespace the policies name, and reports what they select as
		// Events on its Node.
		clusterRole(NetworkPolicyRole,
			rbacac.PolicyRule().WithAPIGroups("").WithResources("pods", "namespaces").WithVerbs("get", "list", "watch"),
			rbacac.PolicyRule().WithAPIGroups("networking.k8s.io").WithResources("networkpolicies").WithVerbs("get", "list", "watch"),
			rbacac.PolicyRule().WithAPIGroups("", "events.k8s.io").WithResources("events").WithVerbs("create", "patch", "update")),
		// Each node removes the directories of deleted local-path volumes
		// after checking they are gone (pkg/localpath).
		clusterRole("hw:node-volumes",
			rbacac.PolicyRule().WithAPIGroups("").WithResources("persistentvolumes").WithVerbs("get", "list", "watch")),
	}
	bindings := []*rbacac.ClusterRoleBindingApplyConfiguration{
		clusterRoleBinding(FlannelUser, FlannelUser, user(FlannelUser)),
		clusterRoleBinding(NetworkPolicyRole, NetworkPolicyRole, user(FlannelUser)),
		clusterRoleBinding("hw:node-volumes", "hw:node-volumes", group("system:nodes")),
		// Agents ask for their certificates with CSRs; hw's approver, not the
		// controller-manager, approves a joining kubelet's client certificate,
		// as it checks that the node name is this machine's.
		clusterRoleBinding("hw:agents:node-bootstrapper", "system:node-bootstrapper", group(AgentGroup)),
		clusterRoleBinding("hw:nodes:renew-node-client", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group("system:nodes")),
	}
	for _, r := range roles {
		if _, err := api.ClusterRoles().Apply(ctx, r, opts); err != nil {
			return fmt.Errorf("cluster role %s: %w", *r.Name, err)
		}
	}
	for _, b := range bindings {
		if _, err := api.ClusterRoleBindings().Apply(ctx, b, opts); err != nil {
			return fmt.Errorf("cluster role binding %s: %w", *b.Name, err)
		}
	}
	infoRole, infoBinding := readConfigMap(metav1.NamespacePublic, ClusterInfo, user("system:anonymous"), group(AgentGroup))
	configRole, configBinding := readConfigMap(metav1.NamespaceSystem, AgentConfig, group(AgentGroup), group("system:nodes"))
	// Every node runs the cluster DNS and follows its configuration, even
	// while the add-on is disabled (it then waits for the ConfigMap).
	dnsRole, dnsBinding := configMapsRole("hw:node-dns-config", metav1.NamespaceSystem, DNSConfigMaps, []string{"get", "list", "watch"}, group("system:nodes"))
	bootstrapRole := rbacac.Role("hw:read-"+ServerBootstrap, metav1.NamespaceSystem).WithLabels(managedBy).WithRules(
		rbacac.PolicyRule().WithAPIGroups("").WithResources("secrets").WithResourceNames(ServerBootstrap).WithVerbs("get"))
	bootstrapBinding := rbacac.RoleBinding("hw:read-"+ServerBootstrap, metav1.NamespaceSystem).WithLabels(managedBy).
		WithRoleRef(rbacac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName("hw:read-" + ServerBootstrap)).
		WithSubjects(group(ServerGroup))
	for _, r := range []*rbacac.RoleApplyConfiguration{infoRole, configRole, dnsRole, bootstrapRole} {
		if _, err := api.Roles(*r.Namespace).Apply(ctx, r, opts); err != nil {
			return fmt.Errorf("role %s/%s: %w", *r.Namespace, *r.Name, err)
		}
	}
	for _, b := range []*rbacac.RoleBindingApplyConfiguration{infoBinding, configBinding, dnsBinding, bootstrapBinding} {
		if _, err := api.RoleBindings(*b.Namespace).Apply(ctx, b, opts); err != nil {
			return fmt.Errorf("role binding %s/%s: %w", *b.Namespace, *b.Name, err)
		}
	}
	return nil
}
