package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ReadConfigMap returns the config text stored in the ConfigMap.
func ReadConfigMap(ctx context.Context, c kubernetes.Interface, namespace, name string) (string, error) {
	cm, err := c.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("ConfigMap %s/%s not found: is metallb installed (microk8s enable lab/metallb)?", namespace, name)
	}
	if err != nil {
		return "", fmt.Errorf("read ConfigMap %s/%s: %w", namespace, name, err)
	}
	data, ok := cm.Data[ConfigKey]
	if !ok {
		return "", fmt.Errorf("ConfigMap %s/%s has no %q key", namespace, name, ConfigKey)
	}
	return data, nil
}
