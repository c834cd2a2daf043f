//! Multi-head self-attention as HF's `CLIPSegAttention` (names `q_proj`, `k_proj`, `v_proj`, `out_proj`).
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use vlsm_core::BlockPoint;
use vlsm_nn::HookScope;
use vlsm_nn::attention::{QueryProjections, multi_head, query_attention};

/// Self-attention with a hook at every projection.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    #[module(skip)]
    num_heads: usize,
}

impl Attention {
    /// Random-initialised attention of width `width` with `num_heads` heads.
    pub fn init(width: usize, num_heads: usize, device: &Device) -> Self {
        let lin = || LinearConfig::new(width, width).init(device);
        Self {
            q_proj: lin(),
            k_proj: lin(),
            v_proj: lin(),
            out_proj: lin(),
            num_heads,
        }
    }

    /// The projection at `point` of `x`, through its hooks.
    fn project(&self, point: BlockPoint, x: &Tensor<3>, scope: &HookScope) -> Tensor<3> {
        let linear = match point {
            BlockPoint::QProj => &self.q_proj,
            BlockPoint::KProj => &self.k_proj,
            BlockPoint::VProj => &self.v_proj,
            _ => &self.out_proj,
        };
        scope.at(point, x, linear.forward(x.clone()))
    }

    /// `x`: `[B, T, D]`; `mask`: additive `[T, T]` (e.g. causal) or none.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2>>, scope: &HookScope) -> Tensor<3> {
        let merged = multi_head(
            self.project(BlockPoint::QProj, &x, scope),
            self.project(BlockPoint::KProj, &x, scope),
            self.project(BlockPoint::VProj, &x, scope),
            self.num_heads,
            mask.map(|m| m.clone().unsqueeze::<4>()),
        );
        self.project(BlockPoint::OutProj, &merged, scope)
    }

    /// SAN's recognition attention: `queries` `[B, Q, D]` attend to themselves (each only to
    /// itself) and to every `context` token `[B, T, D]`, with the additive `bias` `[B, H, Q, T]`
    /// on the query→context scores. Both inputs are already normed. Returns `[B, Q, D]`.
    pub fn forward_queries(
        &self,
        context: Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        scope: &HookScope,
    ) -> Tensor<3> {
        let projections = QueryProjections {
            q: self.project(BlockPoint::QProj, &queries, scope),
            k_self: self.project(BlockPoint::KProj, &queries, scope),
            v_self: self.project(BlockPoint::VProj, &queries, scope),
            k_ctx: self.project(BlockPoint::KProj, &context, scope),
            v_ctx: self.project(BlockPoint::VProj, &context, scope),
        };
        let merged = query_attention(projections, self.num_heads, bias);
        self.project(BlockPoint::OutProj, &merged, scope)
    }
}
