// Package rbac holds the cluster roles hw's own components need beyond
// Kubernetes' defaults, and puts them in place on every server start.
package rbac

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// FlannelUser is the identity of every node's flannel (the CN of its client
// certificate). Flannel reads all Nodes to route to their pod subnets, which
// a kubelet's own identity may not do.
const FlannelUser = "system:hw-flannel"

// managedBy marks objects hw owns and rewrites on start.
var managedBy = map[string]string{"app.kubernetes.io/managed-by": "hw"}

// ClusterRoles returns the roles and their bindings.
func ClusterRoles() ([]rbacv1.ClusterRole, []rbacv1.ClusterRoleBinding) {
	roles := []rbacv1.ClusterRole{{
		ObjectMeta: metav1.ObjectMeta{Name: FlannelUser, Labels: managedBy},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"patch"}},
		},
	}}
	bindings := []rbacv1.ClusterRoleBinding{{
		ObjectMeta: metav1.ObjectMeta{Name: FlannelUser, Labels: managedBy},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: FlannelUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: FlannelUser}},
	}}
	return roles, bindings
}

// Ensure creates the roles and bindings, or updates them to hw's version.
func Ensure(ctx context.Context, client kubernetes.Interface) error {
	roles, bindings := ClusterRoles()
	api := client.RbacV1()
	for _, role := range roles {
		err := ensure(ctx, role.Name, func() error {
			_, err := api.ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
			return err
		}, func() error {
			current, err := api.ClusterRoles().Get(ctx, role.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			role.ResourceVersion = current.ResourceVersion
			_, err = api.ClusterRoles().Update(ctx, &role, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("cluster role %s: %w", role.Name, err)
		}
	}
	for _, binding := range bindings {
		err := ensure(ctx, binding.Name, func() error {
			_, err := api.ClusterRoleBindings().Create(ctx, &binding, metav1.CreateOptions{})
			return err
		}, func() error {
			current, err := api.ClusterRoleBindings().Get(ctx, binding.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if current.RoleRef != binding.RoleRef {
				// roleRef cannot change in place.
				if err := api.ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}); err != nil {
					return err
				}
				_, err = api.ClusterRoleBindings().Create(ctx, &binding, metav1.CreateOptions{})
				return err
			}
			binding.ResourceVersion = current.ResourceVersion
			_, err = api.ClusterRoleBindings().Update(ctx, &binding, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("cluster role binding %s: %w", binding.Name, err)
		}
	}
	return nil
}

// ensure creates, and updates instead when the object exists already.
func ensure(ctx context.Context, name string, create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		return update()
	}
	return err
}
