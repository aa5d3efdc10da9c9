//! The demo catalog, seeded into an empty store so a fresh clone has something
//! to sell: 50 everyday products, one flash-sale product with small stock, and one
//! whose sale starts tomorrow.

use flashcore_actors::Engine;
use flashcore_actors::sku::StockChange;
use flashcore_domain::{Currency, Money, Product, Sku};

/// The flash-sale SKU: 100 units, at most 2 per order.
pub const FLASH_SKU: &str = "FLASH-SNEAKER-01";
/// A SKU whose sale has not started yet.
pub const UPCOMING_SKU: &str = "UPCOMING-CONSOLE-01";

fn product(
    sku: &str,
    title: &str,
    description: &str,
    cents: i64,
    max: Option<u32>,
    starts: Option<u64>,
) -> anyhow::Result<Product> {
    Ok(Product::new(
        Sku::parse(sku)?,
        title,
        description,
        Money::new(cents, Currency::EUR)?,
        max,
        starts.map(flashcore_domain::Timestamp::from_millis),
    )?)
}

/// Every demo product with its stock.
pub fn catalog() -> anyhow::Result<Vec<(Product, u64)>> {
    let kinds = [
        ("TSHIRT", "T-shirt", 1_999),
        ("HOODIE", "Hoodie", 4_999),
        ("CAP", "Cap", 1_499),
        ("MUG", "Mug", 999),
        ("SOCKS", "Socks", 799),
        ("BACKPACK", "Backpack", 5_999),
        ("BOTTLE", "Water bottle", 1_899),
        ("NOTEBOOK", "Notebook", 699),
        ("POSTER", "Poster", 1_299),
        ("BEANIE", "Beanie", 1_599),
    ];
    let colours = ["BLACK", "WHITE", "RED", "BLUE", "GREEN"];
    let mut out = Vec::new();
    for (i, (code, name, cents)) in kinds.iter().enumerate() {
        for (j, colour) in colours.iter().enumerate() {
            let sku = format!("{code}-{colour}");
            let title = format!("{name}, {}", colour.to_lowercase());
            let stock = 200 + 50 * ((i + j) as u64 % 7);
            out.push((product(&sku, &title, "Everyday demo product.", *cents, None, None)?, stock));
        }
    }
    out.push((
        product(
            FLASH_SKU,
            "Limited sneaker drop",
            "Flash sale: 100 pairs only, at most 2 per order.",
            12_900,
            Some(2),
            None,
        )?,
        100,
    ));
    let tomorrow = flashcore_actors::clock::now().plus_millis(24 * 3_600 * 1_000).as_millis();
    out.push((
        product(
            UPCOMING_SKU,
            "Console, launch edition",
            "On sale from tomorrow; 1 per order.",
            49_900,
            Some(1),
            Some(tomorrow),
        )?,
        50,
    ));
    Ok(out)
}

/// Writes the demo catalog and its stock through the engine.
pub async fn seed(engine: &Engine) -> anyhow::Result<()> {
    let products = catalog()?;
    let n = products.len();
    for (product, stock) in products {
        let sku = product.sku.clone();
        engine.upsert_product(product).await?;
        engine.adjust_stock(&sku, StockChange::SetTotal(stock)).await?;
    }
    tracing::info!(products = n, "demo catalog seeded");
    Ok(())
}
