//! The product catalog, cached in memory in front of its store.
//!
//! Every cart change needs the product (price, limits, sale start); reading it
//! from the store each time would put a query on the hot path. The cache is
//! loaded at start and written through on every change.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use flashcore_domain::{Product, Sku};

use crate::ports::{Catalog, StoreError};

/// Write-through cache over a [`Catalog`].
pub struct CatalogCache {
    store: Arc<dyn Catalog>,
    products: RwLock<BTreeMap<Sku, Arc<Product>>>,
}

impl std::fmt::Debug for CatalogCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogCache").field("len", &self.len()).finish()
    }
}

impl CatalogCache {
    /// Loads the whole catalog from `store`.
    pub async fn load(store: Arc<dyn Catalog>) -> Result<Self, StoreError> {
        let mut products = BTreeMap::new();
        let mut after: Option<Sku> = None;
        loop {
            let page = store.list(10_000, after.as_ref()).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.sku.clone());
            for p in page {
                products.insert(p.sku.clone(), Arc::new(p));
            }
        }
        Ok(CatalogCache { store, products: RwLock::new(products) })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Sku, Arc<Product>>> {
        self.products.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached product for `sku`, if the catalog has one.
    pub fn get(&self, sku: &Sku) -> Option<Arc<Product>> {
        self.read().get(sku).cloned()
    }

    /// Up to `limit` products in SKU order, strictly after `after`.
    pub fn list(&self, limit: usize, after: Option<&Sku>) -> Vec<Arc<Product>> {
        let map = self.read();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        map.range::<Sku, _>((lower, Bound::Unbounded)).take(limit).map(|(_, p)| Arc::clone(p)).collect()
    }

    /// How many products the cache holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when there are no products.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `sku` from the store again (another node changed it): the cache
    /// then has what the store has, or drops it. Answers the product.
    pub async fn reload(&self, sku: &Sku) -> Result<Option<Arc<Product>>, StoreError> {
        let product = self.store.get(sku).await?.map(Arc::new);
        let mut map = self.products.write().unwrap_or_else(|p| p.into_inner());
        match &product {
            Some(p) => map.insert(sku.clone(), Arc::clone(p)),
            None => map.remove(sku),
        };
        Ok(product)
    }

    /// Writes a product through to the store, then to the cache.
    pub async fn upsert(&self, product: Product) -> Result<Arc<Product>, StoreError> {
        self.store.upsert(&product).await?;
        let product = Arc::new(product);
        self.products.write().unwrap_or_else(|p| p.into_inner()).insert(product.sku.clone(), Arc::clone(&product));
        Ok(product)
    }
}
