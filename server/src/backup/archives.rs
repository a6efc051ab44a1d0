//! The archive's own check, run with every backup verification: each
//! archived original of the live installation decrypted with its tenant's
//! data key and compared with the SHA-256 its import recorded
//! (`archive verify`). The backup's copies of those files are checked
//! against the manifest's digests of the same encrypted files, so together
//! they say that every backed-up original can be read back.

use passerelle_catalog::{Catalog, TenantName};
use passerelle_import::Keyring;

use super::Verified;
use crate::data_dir::DataDir;

/// Adds a failure to `verified` for every archived original that does not
/// decrypt to what was imported (or for a check that could not run).
pub(crate) async fn check_live_archive(
    catalog: &Catalog,
    keyring: &Keyring,
    data_dir: &DataDir,
    verified: &mut Verified,
) {
    let tenants = match catalog.tenants().await {
        Ok(tenants) => tenants.iter().filter_map(|t| TenantName::parse(&t.name).ok()).collect::<Vec<_>>(),
        Err(e) => {
            verified.failures.push(format!("archive verify: cannot list the tenants: {e}"));
            return;
        }
    };
    match passerelle_import::verify_archives(catalog, keyring, &data_dir.import_layout(), &tenants).await {
        Ok(checks) => {
            for check in checks {
                if let Err(e) = &check.outcome {
                    verified.failures.push(format!(
                        "archive of tenant {} job {} ({}): {e}",
                        check.tenant,
                        check.job_id,
                        check.path.display()
                    ));
                }
            }
        }
        Err(e) => verified.failures.push(format!("archive verify: {e}")),
    }
}
