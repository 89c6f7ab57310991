package embedetcd

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// User is an etcd user that may read and write every key under Prefix + "/"
// (a cluster's keys: "/meshpool/…"), and nothing else: not the keys of a
// prefix that only starts the same ("/meshpool-staging/…").
type User struct {
	Name, Password, Prefix string
}

// EnableAuth adds root (with rootPassword) and users, each with a role of
// its own name granting read-write on its prefix and the slash after it,
// and turns etcd's
// authentication on: from then on every request needs a user.
func (s *Server) EnableAuth(ctx context.Context, rootPassword string, users ...User) error {
	srv := s.etcd.Server
	steps := []func() error{
		func() error {
			_, err := srv.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: rootPassword})
			return err
		},
		func() error { _, err := srv.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "root"}); return err },
		func() error {
			_, err := srv.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
			return err
		},
	}
	for _, u := range users {
		steps = append(steps,
			func() error { _, err := srv.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: u.Name}); return err },
			func() error {
				_, err := srv.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: u.Name, Perm: &authpb.Permission{
					PermType: authpb.READWRITE, Key: []byte(u.Prefix + "/"), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(u.Prefix + "/")),
				}})
				return err
			},
			func() error {
				_, err := srv.UserAdd(ctx, &pb.AuthUserAddRequest{Name: u.Name, Password: u.Password})
				return err
			},
			func() error {
				_, err := srv.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: u.Name, Role: u.Name})
				return err
			},
		)
	}
	steps = append(steps, func() error { _, err := srv.AuthEnable(ctx, &pb.AuthEnableRequest{}); return err })
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("embedetcd: cannot enable auth: %w", err)
		}
	}
	return nil
}
