/**
 * Storefront at `/`, operator console at `/ops`. The console is loaded on demand so
 * the storefront's bundle stays small.
 */
import { createRouter, createWebHistory } from 'vue-router'
import StoreLayout from './views/store/StoreLayout.vue'
import CatalogView from './views/store/CatalogView.vue'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    {
      path: '/',
      component: StoreLayout,
      children: [
        { path: '', name: 'catalog', component: CatalogView, meta: { title: 'Shop' } },
        { path: 'products/:sku', name: 'product', component: () => import('./views/store/ProductView.vue'), props: true, meta: { title: 'Product' } },
        { path: 'products/:sku/queue', name: 'waiting-room', component: () => import('./views/store/WaitingRoomView.vue'), props: true, meta: { title: 'Waiting room' } },
        { path: 'cart', name: 'cart', component: () => import('./views/store/CartView.vue'), meta: { title: 'Your cart' } },
        { path: 'orders/:id', name: 'order', component: () => import('./views/store/OrderView.vue'), props: true, meta: { title: 'Your order' } },
      ],
    },
    {
      path: '/ops',
      component: () => import('./ops/OpsLayout.vue'),
      children: [
        { path: '', name: 'ops-overview', component: () => import('./ops/OpsOverview.vue'), meta: { title: 'Overview' } },
        { path: 'stock', name: 'ops-stock', component: () => import('./ops/OpsStock.vue'), meta: { title: 'Stock' } },
        { path: 'products', name: 'ops-products', component: () => import('./ops/OpsProducts.vue'), meta: { title: 'Products' } },
        { path: 'orders', name: 'ops-orders', component: () => import('./ops/OpsOrders.vue'), meta: { title: 'Orders' } },
        { path: 'queues', name: 'ops-queues', component: () => import('./ops/OpsQueues.vue'), meta: { title: 'Waiting rooms' } },
        { path: 'keys', name: 'ops-keys', component: () => import('./ops/OpsKeys.vue'), meta: { title: 'API keys' } },
      ],
    },
    { path: '/:rest(.*)*', name: 'not-found', component: () => import('./views/NotFound.vue'), meta: { title: 'Not found' } },
  ],
})

router.afterEach((to) => {
  const title = typeof to.meta.title === 'string' ? to.meta.title : ''
  document.title = title ? `${title} · flashcore` : 'flashcore'
})
