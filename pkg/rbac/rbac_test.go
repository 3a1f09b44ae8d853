package rbac

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestEnsureAppliesThenRepairs(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	if err := Ensure(ctx, client); err != nil {
		t.Fatal(err)
	}
	role, err := client.RbacV1().ClusterRoles().Get(ctx, FlannelUser, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A user who trims the role gets hw's version back on the next start.
	role.Rules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}}
	if _, err := client.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, client); err != nil {
		t.Fatalf("second run: %v", err)
	}
	role, _ = client.RbacV1().ClusterRoles().Get(ctx, FlannelUser, metav1.GetOptions{})
	if len(role.Rules) != 2 || len(role.Rules[0].Verbs) != 4 {
		t.Errorf("role not repaired: %+v", role.Rules)
	}
	binding, err := client.RbacV1().RoleBindings(metav1.NamespacePublic).Get(ctx, "hw:read-"+ClusterInfo, metav1.GetOptions{})
	if err != nil || binding.Subjects[0].Name != "system:anonymous" {
		t.Errorf("cluster-info must be readable anonymously: %+v, %v", binding, err)
	}
	agents, err := client.RbacV1().ClusterRoleBindings().Get(ctx, "hw:agents:node-bootstrapper", metav1.GetOptions{})
	if err != nil || agents.Subjects[0].Name != AgentGroup {
		t.Errorf("agents' CSR binding: %+v, %v", agents, err)
	}
}
