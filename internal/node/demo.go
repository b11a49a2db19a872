package node

import (
	"context"
	"fmt"

	"tapline"
)

// The demo account, app and link that `make run` seeds. Their credentials
// are fixed so the README's curl examples work as written; never use them
// outside a local demo.
const (
	DemoAccount   = "demo"
	DemoEmail     = "demo@example.com"
	DemoPassword  = "demo-password"
	DemoAppName   = "Demo App"
	DemoSDKSecret = "demo-secret-0123456789"
	DemoSDKKey    = "demo-key-0123456789abc"
	DemoLinkSlug  = "demo"
	// DemoAppStoreID is the demo app's App Store id: the app-id of Apple's
	// sample SKAdNetwork postbacks, so that the README's example counts.
	DemoAppStoreID = 525463029
)

// Demo is what SeedDemo created or found.
type Demo struct {
	Account *tapline.Account
	App     *tapline.App
	Link    *tapline.Link
}

// SeedDemo creates the demo account, app and link unless they exist, and
// returns them.
func SeedDemo(ctx context.Context, accounts tapline.AccountService) (*Demo, error) {
	d := &Demo{}
	acct, err := accounts.AccountByName(ctx, DemoAccount)
	switch tapline.ErrorCode(err) {
	case "":
	case tapline.ENOTFOUND:
		acct = &tapline.Account{Name: DemoAccount}
		if err := accounts.CreateAccount(ctx, acct, &tapline.User{Email: DemoEmail}, DemoPassword); err != nil {
			return nil, fmt.Errorf("create demo account: %w", err)
		}
	default:
		return nil, fmt.Errorf("look up demo account: %w", err)
	}
	d.Account = acct

	apps, err := accounts.AppsByAccount(ctx, acct.ID)
	if err != nil {
		return nil, fmt.Errorf("list demo apps: %w", err)
	}
	for _, a := range apps {
		if a.Name == DemoAppName {
			d.App = a
		}
	}
	if d.App == nil {
		d.App = &tapline.App{
			AccountID:  acct.ID,
			Name:       DemoAppName,
			SDKSecret:  DemoSDKSecret,
			SDKKey:     DemoSDKKey,
			IOSURL:     "https://apps.apple.com/app/id1234567890",
			AndroidURL: "https://play.google.com/store/apps/details?id=com.example.demo",
			WebURL:     "https://example.com/demo",
			AppStoreID: DemoAppStoreID,
		}
		d.App.ConversionSchema.Fine[20], d.App.ConversionSchema.Fine[63] = "purchase", "subscription"
		d.App.ConversionSchema.Coarse[2] = "paying user"
		if err := accounts.CreateApp(ctx, d.App); err != nil {
			return nil, fmt.Errorf("create demo app: %w", err)
		}
	}

	link, err := accounts.LinkBySlug(ctx, DemoLinkSlug)
	switch tapline.ErrorCode(err) {
	case "":
	case tapline.ENOTFOUND:
		link = &tapline.Link{AppID: d.App.ID, Slug: DemoLinkSlug, Name: "Demo campaign"}
		if err := accounts.CreateLink(ctx, link); err != nil {
			return nil, fmt.Errorf("create demo link: %w", err)
		}
	default:
		return nil, fmt.Errorf("look up demo link: %w", err)
	}
	d.Link = link
	return d, nil
}
